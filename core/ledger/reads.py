"""The ledger's reads: plain commands, no state changes (those are scripts, core.ledger.store).

What the CLI, the metrics, the dry runs and the worker's batch path read: events, deliveries
and their history, per-connection state, indexes and the work queue's figures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from core.ledger import deliveries, event_fields
from core.ledger.keys import LedgerKeys, StatsHash
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, delivery_view, event_view, text
from core.queue import HintQueue


class LedgerReads:
    """Read access to the ledger under one key prefix (the base of core.ledger.Ledger)."""

    redis: redis.Redis
    keys: LedgerKeys
    queue: HintQueue

    def pause_info(self, connection: str) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = self.redis.get(self.keys.pause(connection))
        return json.loads(raw) if raw else None

    def raw_delivery(self, delivery_id: str) -> dict[str, str]:
        with translate_redis_errors():
            return deliveries.read_hashes(self.redis, self.keys, [delivery_id])[0]

    def raw_deliveries(self, ids: Sequence[str]) -> list[dict[str, str]]:
        return deliveries.read_hashes(self.redis, self.keys, ids)

    def raw_events(self, ids: Sequence[str]) -> list[dict[str, str]]:
        raws = self._hashes([self.keys.event(i) for i in ids])
        return [event_fields.complete(i, raw) for i, raw in zip(ids, raws, strict=True)]

    def _hashes(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """Several hashes in one round trip, in order ({} where missing)."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return [decode(raw) for raw in pipe.execute()]

    def queue_figures(self) -> dict[str, int]:
        """The work queue as the ledger sees it: messages published and withdrawn by batches
        (both since the start), and messages waiting now."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self.keys.published())
            pipe.get(self.keys.withdrawn())
            pipe.llen(self.queue.key)
            published, withdrawn, waiting = pipe.execute()
        return {
            "published": int(published or 0),
            "withdrawn": int(withdrawn or 0),
            "waiting": int(waiting),
        }

    def stats(self, *names: StatsHash) -> dict[StatsHash, dict[str, int]]:
        """The hub-wide counters (`stats:<name>` hashes: field -> count), in one round trip."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self.keys.stats(name))
            return {
                name: {k: int(v) for k, v in decode(raw).items()}
                for name, raw in zip(names, pipe.execute(), strict=True)
            }

    def first_ready(self, connection: str, obj: str) -> str | None:
        """The longest-waiting published delivery of (connection, object), if any."""
        with translate_redis_errors():
            first = self.redis.zrange(self.keys.ready(connection, obj), 0, 0)
        return text(first[0]) if first else None

    def raw_event(self, event_id: str) -> dict[str, str]:
        with translate_redis_errors():
            raw = decode(self.redis.hgetall(self.keys.event(event_id)))
        return event_fields.complete(event_id, raw)

    def event(self, event_id: str) -> dict[str, Any] | None:
        """The accepted event as the `events show` contract describes it, or None."""
        raw = self.raw_event(event_id)
        if not raw:
            return None
        ids = event_fields.delivery_ids(raw["deliveries"])
        return event_view(raw, [d for d in (self.delivery(i) for i in ids) if d is not None])

    def delivery(self, delivery_id: str, *, history: bool = False) -> dict[str, Any] | None:
        with translate_redis_errors():
            [raw] = deliveries.read_hashes(self.redis, self.keys, [delivery_id])
            if not raw:
                return None
            pipe = self.redis.pipeline(transaction=False)
            pipe.lrange(self.keys.attempts(delivery_id), 0, -1)
            pipe.lrange(self.keys.actions(delivery_id), 0, -1)
            attempts, actions = pipe.execute()
        view = delivery_view(raw)
        if history:
            view["attempt_history"] = [json.loads(a) for a in attempts]
            view["actions"] = [json.loads(a) for a in actions]
        return view

    def recent_events(self, source: str | None = None, limit: int = 50) -> list[str]:
        key = self.keys.source_events(source) if source else self.keys.events()
        with translate_redis_errors():
            return [text(i) for i in self.redis.zrevrange(key, 0, limit - 1)]

    def dead_ids(
        self, limit: int | None = 1000, since: float | None = None, offset: int = 0
    ) -> list[str]:
        """Dead letters' ids, newest first: `limit` of them (None: all) after the first
        `offset`."""
        with translate_redis_errors():
            return [
                text(i)
                for i in self.redis.zrevrangebyscore(
                    self.keys.dead_index(),
                    "+inf",
                    int(since * 1000) if since else "-inf",
                    start=offset,
                    num=-1 if limit is None else limit,
                )
            ]

    def dead_count(self, since: float | None = None) -> int:
        with translate_redis_errors():
            return int(
                self.redis.zcount(
                    self.keys.dead_index(), int(since * 1000) if since else "-inf", "+inf"
                )
            )

    def delivery_fields(self, ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, str]]:
        """Some fields of several deliveries in one round trip, in order (a field the
        delivery lacks is left out; a missing delivery reads as {}). Cheaper than whole
        hashes where those carry a dead letter's record."""
        replies = deliveries.read_fields(self.redis, self.keys, ids, fields)
        return [
            {
                name: text(value)
                for name, value in zip(fields, reply, strict=True)
                if value is not None
            }
            for reply in replies
        ]

    def connection_state(self, connection: str) -> dict[str, Any]:
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.counts(connection))
            pipe.get(self.keys.pause(connection))
            pipe.hgetall(self.keys.last(connection))
            pipe.hgetall(self.keys.breaker(connection))
            pipe.get(self.keys.cooldown(connection))
            counts, pause, last, breaker, cooldown = pipe.execute()
        return {
            "counts": {k: int(v) for k, v in decode(counts).items()},
            "pause": json.loads(pause) if pause else None,
            "last": decode(last),
            "breaker": decode(breaker),
            "cooldown_until_ms": int(cooldown) if cooldown else None,
        }
