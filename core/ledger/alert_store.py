"""What alerting keeps in the ledger's Redis (`ledger.alerting`): each dedup key's state, the
resolved episodes, what each sink was sent, and the reads the evaluator observes.

The evaluation is single-flight (`lock`), and its result is written in one MULTI (`apply`):
states, history and the outbox entries together, so two schedulers never fire one alert twice
and a crash between "fired" and "queued for the sinks" cannot happen.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis

from core.alerting.evaluate import Evaluation
from core.alerting.model import AlertState, ConnectionSeen, DeadSample, Observations
from core.ledger import deliveries
from core.ledger.keys import LedgerKeys, StatsHash
from core.ledger.locks import single_flight
from core.ledger.outbox import AlertOutbox
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, text

HISTORY_LENGTH = 500
RECENT_DEAD = 300  # the newest dead letters read for samples and the top error
MAX_SCHEDULED_SCAN = 20_000  # backlog_age: retries scanned for their age, per evaluation


class AlertStore:
    def __init__(self, client: redis.Redis, keys: LedgerKeys, outbox: AlertOutbox) -> None:
        self.redis = client
        self.keys = keys
        self.outbox = outbox

    # single flight ----------------------------------------------------------------------
    def lock(self, ttl_seconds: float = 30) -> contextlib.AbstractContextManager[bool]:
        """One evaluation (or report) at a time across every scheduler."""
        return single_flight(self.redis, self.keys.alert_lock(), ttl_seconds)

    def mark_hub_started(self, now: float) -> None:
        with translate_redis_errors():
            self.redis.set(self.keys.hub_started(), repr(now))

    def hub_started_at(self, now: float) -> float:
        """When the scheduler last started; `now` (remembered) if it never said."""
        with translate_redis_errors():
            self.redis.set(self.keys.hub_started(), repr(now), nx=True)
            return float(cast(bytes, self.redis.get(self.keys.hub_started())) or now)

    # states -----------------------------------------------------------------------------
    def states(self) -> dict[str, AlertState]:
        with translate_redis_errors():
            raw = decode(self.redis.hgetall(self.keys.alert_states()))
        return {key: AlertState.from_json(json.loads(value)) for key, value in raw.items()}

    def apply(self, result: Evaluation, entries: Sequence[tuple[dict[str, Any], str]]) -> None:
        """Write an evaluation: new states, forgotten keys, ended episodes, and the outbox
        entries (payload, sink) with their notifications marked as queued, all or none."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            if result.changed:
                pipe.hset(
                    self.keys.alert_states(),
                    mapping={k: json.dumps(s.as_json()) for k, s in result.changed.items()},
                )
            if result.forgotten:
                pipe.hdel(self.keys.alert_states(), *result.forgotten)
            for ended in result.resolved:
                pipe.lpush(self.keys.alert_history(), json.dumps(ended.as_json()))
            if result.resolved:
                pipe.ltrim(self.keys.alert_history(), 0, HISTORY_LENGTH - 1)
            for payload, sink in entries:
                self.outbox.put_in(pipe, payload, sink)
                pipe.hset(
                    self.keys.alert_notifications(),
                    notification_field(payload, sink),
                    json.dumps({"ok": None, "at": None, "error": None, "attempts": 0}),
                )
            pipe.execute()

    def queue(self, payload: dict[str, Any], sinks: Sequence[str]) -> None:
        """A notice that is no alert's state change (the health report) for `sinks`."""
        self.apply(Evaluation(), [(payload, sink) for sink in sinks])

    def history(self, limit: int = 100) -> list[AlertState]:
        with translate_redis_errors():
            raw = self.redis.lrange(self.keys.alert_history(), 0, limit - 1)
        return [AlertState.from_json(json.loads(text(r))) for r in cast(list[bytes], raw)]

    # notifications ----------------------------------------------------------------------
    def record_notification(
        self,
        payload: dict[str, Any],
        sink: str,
        *,
        ok: bool,
        at: float,
        error: str,
        attempts: int,
        outcome: str,
    ) -> None:
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                self.keys.alert_notifications(),
                notification_field(payload, sink),
                json.dumps({"ok": ok, "at": at, "error": error or None, "attempts": attempts}),
            )
            pipe.hincrby(self.keys.stats(StatsHash.ALERTS), f"{sink}|{outcome}", 1)
            pipe.execute()

    def notifications(self, alert_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """alert id -> [{sink, status, ok, at, error, attempts}] (every notice of it)."""
        wanted = set(alert_ids)
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in wanted}
        with translate_redis_errors():
            raw = decode(self.redis.hgetall(self.keys.alert_notifications()))
        for field, value in sorted(raw.items()):
            alert_id, sink, status = field.split("|", 2)
            if alert_id in wanted:
                out[alert_id].append({"sink": sink, "status": status, **json.loads(value)})
        return out

    def forget_notifications(self, keep: Iterable[str]) -> None:
        """Drop what sinks were sent for alerts no longer listed (bounded growth)."""
        kept = set(keep)
        with translate_redis_errors():
            fields = [text(f) for f in self.redis.hkeys(self.keys.alert_notifications())]
            stale = [f for f in fields if f.split("|", 1)[0] not in kept]
            if stale:
                self.redis.hdel(self.keys.alert_notifications(), *stale)

    def report_sent_at(self) -> float | None:
        with translate_redis_errors():
            raw = self.redis.get(self.keys.report_sent())
        return float(cast(bytes, raw)) if raw else None

    def mark_report_sent(self, now: float) -> None:
        with translate_redis_errors():
            self.redis.set(self.keys.report_sent(), repr(now))

    # what the evaluator observes --------------------------------------------------------
    def observe(
        self,
        now: float,
        sources: Sequence[str],
        connections: Mapping[str, Sequence[str]],
    ) -> Observations:
        """The ledger as alerting sees it now. `connections`: name -> the objects its
        mappings write (where its published deliveries wait). Plain reads, a few round
        trips whatever the traffic: nothing here costs the receiver anything."""
        k = self.keys
        names = list(connections)
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for source in sources:
                pipe.zrevrange(k.source_events(source), 0, 0, withscores=True)
            for name in names:
                pipe.get(k.pause(name))
                pipe.hmget(k.last(name), "success_at", "paused_at", "paused_by")
                pipe.hget(k.breaker(name), "state")
                pipe.hgetall(k.dead_counts(name))
                pipe.get(k.oauth_refresh_failure(name))
                for obj in connections[name]:
                    pipe.zrange(k.ready(name, obj), 0, 0)
            replies = iter(pipe.execute())
            last_event = {s: _score_seconds(next(replies)) for s in sources}
            seen: dict[str, dict[str, Any]] = {}
            waiting_heads: dict[str, list[str]] = {}
            for name in names:
                pause, (success, paused_at, paused_by), circuit, dead, failing = (
                    next(replies) for _ in range(5)
                )
                heads = [text(h[0]) for h in (next(replies) for _ in connections[name]) if h]
                waiting_heads[name] = heads
                seen[name] = {
                    "paused": json.loads(pause) if pause else None,
                    "last_success_at": float(success) / 1000 if success else None,
                    "last_paused_at": float(paused_at) / 1000 if paused_at else None,
                    "last_paused_by": text(paused_by) if paused_by else None,
                    "circuit": text(circuit) if circuit else "closed",
                    "dead": {key: int(v) for key, v in decode(dead).items() if int(v) > 0},
                    "refresh_failure": json.loads(failing) if failing else None,
                }
            oldest = self._oldest_waiting(waiting_heads, set(names))
            recent = self._recent_dead() if any(s["dead"] for s in seen.values()) else ()
        return Observations(
            now=now,
            hub_started_at=self.hub_started_at(now),
            sources=last_event,
            connections={
                name: ConnectionSeen(oldest_waiting_at=oldest.get(name), **fields)
                for name, fields in seen.items()
            },
            recent_dead=tuple(recent),
        )

    def oldest_waiting(self, connections: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """Per connection (name -> the objects its mappings write), when its oldest pending
        or scheduled delivery began waiting (s); a connection with none is left out."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pairs = [(name, obj) for name, objs in connections.items() for obj in objs]
            for name, obj in pairs:
                pipe.zrange(self.keys.ready(name, obj), 0, 0)
            heads: dict[str, list[str]] = {name: [] for name in connections}
            for (name, _), head in zip(pairs, pipe.execute(), strict=True):
                heads[name] += [text(h) for h in head]
            return self._oldest_waiting(heads, set(connections))

    def firing(self) -> list[AlertState]:
        return [s for s in self.states().values() if s.status == "firing"]

    def _oldest_waiting(self, heads: dict[str, list[str]], names: set[str]) -> dict[str, float]:
        """Per connection, when its oldest pending or scheduled delivery began waiting (its
        creation, or its replay): the heads of its ready sets, and its retries."""
        scheduled = [
            text(i)
            for i in cast(
                list[bytes],
                self.redis.zrange(self.keys.scheduled_index(), 0, MAX_SCHEDULED_SCAN - 1),
            )
        ]
        ids = [i for ids in heads.values() for i in ids] + scheduled
        if not ids:
            return {}
        fields = ["connection", "created_at", "replayed_at"]
        oldest: dict[str, float] = {}
        for conn, created, replayed in deliveries.read_fields(self.redis, self.keys, ids, fields):
            if conn is None or text(conn) not in names or created is None:
                continue
            began = max(float(created), float(replayed or 0)) / 1000
            name = text(conn)
            oldest[name] = min(oldest.get(name, began), began)
        return oldest

    def _recent_dead(self) -> list[DeadSample]:
        ids = [
            text(i)
            for i in cast(
                list[bytes], self.redis.zrevrange(self.keys.dead_index(), 0, RECENT_DEAD - 1)
            )
        ]
        fields = ["connection", "dead_category", "dead_error"]
        found = deliveries.read_fields(self.redis, self.keys, ids, fields)
        return [
            DeadSample(delivery_id, text(conn), text(category), text(error or b""))
            for delivery_id, (conn, category, error) in zip(ids, found, strict=True)
            if conn is not None and category is not None
        ]


def _score_seconds(reply: Any) -> float | None:
    return float(reply[0][1]) / 1000 if reply else None


def notification_field(payload: Mapping[str, Any], sink: str) -> str:
    return f"{payload['id']}|{sink}|{payload['status']}"
