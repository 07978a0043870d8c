"""The ledger's reads: plain commands, no state changes (those are scripts, core.ledger.store).

What the CLI, the metrics, the dry runs and the worker's batch path read: events, deliveries
and their history, per-connection state, indexes and the work queue's figures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, delivery_view, event_view, text
from core.queue import HintQueue


class LedgerReads:
    """Read access to the ledger under one key prefix (the base of core.ledger.Ledger)."""

    redis: redis.Redis
    prefix: str
    queue: HintQueue

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def pause_info(self, connection: str) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = self.redis.get(self.key("conn", connection, "pause"))
        return json.loads(raw) if raw else None

    def raw_delivery(self, delivery_id: str) -> dict[str, str]:
        with translate_redis_errors():
            return decode(self.redis.hgetall(self.key("dlv", delivery_id)))

    def raw_deliveries(self, ids: Sequence[str]) -> list[dict[str, str]]:
        return self._hashes("dlv", ids)

    def raw_events(self, ids: Sequence[str]) -> list[dict[str, str]]:
        return self._hashes("evt", ids)

    def _hashes(self, kind: str, ids: Sequence[str]) -> list[dict[str, str]]:
        """Several records of one kind in one round trip, in order ({} where missing)."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for record_id in ids:
                pipe.hgetall(self.key(kind, record_id))
            return [decode(raw) for raw in pipe.execute()]

    def queue_figures(self) -> dict[str, int]:
        """The work queue as the ledger sees it: messages published and withdrawn by batches
        (both since the start), and messages waiting now."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self.key("msgseq"))
            pipe.get(self.key("msgwithdrawn"))
            pipe.llen(self.queue.key)
            published, withdrawn, waiting = pipe.execute()
        return {"published": int(published or 0), "withdrawn": int(withdrawn or 0),
                "waiting": int(waiting)}

    def stats(self, *names: str) -> dict[str, dict[str, int]]:
        """The hub-wide counters (`stats:<name>` hashes: field -> count), in one round trip."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self.key("stats", name))
            return {name: {k: int(v) for k, v in decode(raw).items()}
                    for name, raw in zip(names, pipe.execute(), strict=True)}

    def first_ready(self, connection: str, obj: str) -> str | None:
        """The longest-waiting published delivery of (connection, object), if any."""
        with translate_redis_errors():
            first = self.redis.zrange(self.key("ready", connection, obj), 0, 0)
        return text(first[0]) if first else None

    def raw_event(self, event_id: str) -> dict[str, str]:
        with translate_redis_errors():
            return decode(self.redis.hgetall(self.key("evt", event_id)))

    def event(self, event_id: str) -> dict[str, Any] | None:
        """The recorded event as the `events show` contract describes it, or None."""
        raw = self.raw_event(event_id)
        if not raw:
            return None
        ids = [i for i in raw.get("deliveries", "").split(",") if i]
        return event_view(raw, [d for d in (self.delivery(i) for i in ids) if d is not None])

    def delivery(self, delivery_id: str, *, history: bool = False) -> dict[str, Any] | None:
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.key("dlv", delivery_id))
            pipe.lrange(self.key("dlv", delivery_id, "attempts"), 0, -1)
            pipe.lrange(self.key("dlv", delivery_id, "actions"), 0, -1)
            raw, attempts, actions = pipe.execute()
        if not raw:
            return None
        view = delivery_view(decode(raw))
        if history:
            view["attempt_history"] = [json.loads(a) for a in attempts]
            view["actions"] = [json.loads(a) for a in actions]
        return view

    def recent_events(self, source: str | None = None, limit: int = 50) -> list[str]:
        key = self.key("events", "src", source) if source else self.key("events")
        with translate_redis_errors():
            return [text(i) for i in self.redis.zrevrange(key, 0, limit - 1)]

    def dead_ids(self, limit: int | None = 1000, since: float | None = None,
                 offset: int = 0) -> list[str]:
        """Dead letters' ids, newest first: `limit` of them (None: all) after the first
        `offset`."""
        with translate_redis_errors():
            return [text(i) for i in self.redis.zrevrangebyscore(
                self.key("idx", "dead"), "+inf", int(since * 1000) if since else "-inf",
                start=offset, num=-1 if limit is None else limit)]

    def dead_count(self, since: float | None = None) -> int:
        with translate_redis_errors():
            return int(self.redis.zcount(self.key("idx", "dead"),
                                         int(since * 1000) if since else "-inf", "+inf"))

    def delivery_fields(self, ids: Sequence[str], fields: Sequence[str]
                        ) -> list[dict[str, str]]:
        """Some fields of several deliveries in one round trip, in order (a field the
        delivery lacks is left out; a missing delivery reads as {}). Cheaper than whole
        hashes where those carry a dead letter's record."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for record_id in ids:
                pipe.hmget(self.key("dlv", record_id), list(fields))
            replies = pipe.execute()
        return [{name: text(value) for name, value in zip(fields, reply, strict=True)
                 if value is not None} for reply in replies]

    def connection_state(self, connection: str) -> dict[str, Any]:
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.key("conn", connection, "counts"))
            pipe.get(self.key("conn", connection, "pause"))
            pipe.hgetall(self.key("conn", connection, "last"))
            pipe.hgetall(self.key("conn", connection, "breaker"))
            pipe.get(self.key("conn", connection, "cooldown"))
            counts, pause, last, breaker, cooldown = pipe.execute()
        return {"counts": {k: int(v) for k, v in decode(counts).items()},
                "pause": json.loads(pause) if pause else None,
                "last": decode(last), "breaker": decode(breaker),
                "cooldown_until_ms": int(cooldown) if cooldown else None}
