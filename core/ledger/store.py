"""The ledger in Redis: the durable record of every accepted event and every delivery.

Every state change is one Lua script (core/ledger/*.lua, each prefixed with common.lua), so a
delivery is at every moment in exactly one state and every publish to the work queue happens
in the same atomic step as the state change that calls for it.
Reads are core.ledger.reads; Redis errors are translated once, at this edge
(core.ledger.translate), into LedgerUnavailable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from core.ledger.lane import ScriptLane
from core.ledger.model import NewEvent, RecordResult
from core.ledger.reads import LedgerReads
from core.ledger.scripts import SCRIPTS, load_script
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, text
from core.queue import HintQueue


def _gcra(requests: int, per_seconds: float) -> dict[str, float]:
    """A rate limit as the claim script's GCRA parameters."""
    interval = per_seconds * 1000 / requests
    return {"interval_ms": interval, "burst_ms": interval * requests}


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    """A flat HGETALL reply from a script ([field, value, ...]) as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


@dataclass(frozen=True)
class Claim:
    """What `claim` decided: claimed (now ours), or why not."""

    status: str                      # claimed | skip | held | deferred | wait
    attempts: int = 0
    wait_ms: int = 0
    due_ms: int = 0
    reason: str = ""
    #: with_record: the delivery as the claim left it, and (when claimed) its event
    delivery: Mapping[str, str] = field(default_factory=dict)
    event: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    lost: bool                       # the lease had expired and someone else owns it now
    newly_paused: bool = False


class Ledger(LedgerReads):
    def __init__(self, client: redis.Redis, *, prefix: str, queue: HintQueue,
                 dedupe_ttl_seconds: int = 30 * 24 * 3600) -> None:
        self.redis = client
        self.prefix = prefix
        self.queue = queue
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self._scripts = {name: client.register_script(load_script(name, queue.template))
                         for name in SCRIPTS}
        self._lane = ScriptLane(client)     # scripts run on a connection of their own

    def ping(self) -> None:
        """Redis answers on the scripts' own connection, the one every record goes through
        (the shared pool answering says nothing about it)."""
        with translate_redis_errors():
            self._lane.ping()

    # keys -----------------------------------------------------------------------------
    def dedupe_key(self, source: str, external_id: str) -> str:
        return self.key("dedupe", source, external_id)

    def _run(self, script: str, now: float, *raw: str, **request: Any) -> Any:
        """Run a ledger script: ARGV[1] is the JSON request, `raw` strings follow as is."""
        payload = {"prefix": self.prefix, "now": int(now * 1000), "queue": self.queue.key,
                   **request}
        args = [json.dumps(payload, separators=(",", ":")), *raw]
        with translate_redis_errors():
            return self._lane(self._scripts[script], args)

    # the receiver ---------------------------------------------------------------------
    def record(self, events: Sequence[NewEvent], now: float) -> list[RecordResult]:
        """Record events and their deliveries (publishing each) atomically.

        A repeat of an already recorded (source, external id) records nothing and reports the
        first event's id. Raises LedgerUnavailable if Redis cannot take the write.
        """
        now_ms = int(now * 1000)
        # bodies and headers travel as plain arguments: no escaping into (and decoding out
        # of) the JSON request, which is the bulk of the bytes
        raw: list[str] = []
        for ev in events:
            raw += (ev.body, json.dumps(ev.headers, separators=(",", ":")))
        flat = self._run("record", now, *raw, ttl=self.dedupe_ttl_seconds,
                         events=[self._event_payload(ev, now_ms) for ev in events])
        return [RecordResult(text(flat[i]), int(flat[i + 1]), bool(int(flat[i + 2])),
                             bool(int(flat[i + 3])))
                for i in range(0, len(flat), 4)]

    def _event_payload(self, ev: NewEvent, now_ms: int) -> dict[str, Any]:
        fields = [
            "id", ev.id, "source", ev.source, "type", ev.type or "",
            "external_id", ev.external_id, "received_at", int(ev.received_at * 1000),
            "occurred_at", ev.occurred_at or "", "state", ev.state.value,
            "deliveries", ",".join(d.id for d in ev.deliveries),
        ]
        return {
            "dedupe": self.dedupe_key(ev.source, ev.external_id), "id": ev.id,
            "source": ev.source, "received": int(ev.received_at * 1000), "fields": fields,
            **({"echo": {"ref": ev.echo[0], "pairs": [list(p) for p in ev.echo[1]]}}
               if ev.echo else {}),
            "deliveries": [{
                "id": d.id, "connection": d.connection, "object": d.object,
                "rk": d.record_key,
                "fields": ["id", d.id, "event_id", ev.id, "mapping", d.mapping,
                           "connection", d.connection, "object", d.object,
                           "attempts", 0, "created_at", now_ms,
                           *(("occurred_ms", d.occurred_ms) if d.occurred_ms is not None
                             else ())],
            } for d in ev.deliveries],
        }

    # the worker -----------------------------------------------------------------------
    def claim(self, delivery_id: str, *, token: str, now: float, lease_seconds: float,
              rates: Mapping[str, tuple[int, float]] | None = None,
              max_wait_seconds: float = 1.0, with_record: bool = False) -> Claim:
        """Try to take a delivery for one attempt.

        `rates`: (requests, per_seconds) by connection, for those with a rate limit (the
        delivery's own connection picks its entry). `with_record`: also return the delivery as
        the claim left it and, when claimed, its event, read in the same step (a worker then
        makes no reads of its own).
        """
        request: dict[str, Any] = {"id": delivery_id, "token": token,
                                   "lease_ms": int(lease_seconds * 1000),
                                   "max_wait_ms": int(max_wait_seconds * 1000),
                                   "with_record": with_record}
        if rates:
            request["rates"] = {conn: _gcra(requests, per_seconds)
                                for conn, (requests, per_seconds) in rates.items()}
        reply = self._run("claim", now, **request)
        delivery: dict[str, str] = {}
        event: dict[str, str] = {}
        if with_record:
            reply, raw_delivery, raw_event = reply
            delivery, event = decode(_pairs(raw_delivery)), decode(_pairs(raw_event))
        out = [text(x) for x in reply]
        status = out[0]
        if status == "claimed":
            return Claim("claimed", attempts=int(out[1]), delivery=delivery, event=event)
        if status == "wait":
            return Claim("wait", wait_ms=int(float(out[1])), delivery=delivery, event=event)
        if status == "deferred":
            return Claim("deferred", due_ms=int(float(out[1])), reason=out[2],
                         delivery=delivery, event=event)
        return Claim(status, reason=out[1] if len(out) > 1 else "", delivery=delivery,
                     event=event)

    def claim_batch(self, connection: str, obj: str, *, token: str, now: float,
                    lease_seconds: float, limit: int) -> list[tuple[str, int]]:
        """Claim up to `limit` more published deliveries of (connection, object) to send in
        one batch request: [(delivery id, attempts)]. Per-record order still holds."""
        if limit <= 0:
            return []
        flat = self._run("claim_batch", now, conn=connection, object=obj, limit=limit,
                         token=token, lease_ms=int(lease_seconds * 1000))
        return [(text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def finish(self, delivery_id: str, *, token: str, now: float, outcome: str,
               attempt: dict[str, Any], due: float | None = None, error: str = "",
               category: str = "", record: dict[str, Any] | None = None,
               transient: bool = False, cooldown_until: float | None = None,
               pause: dict[str, Any] | None = None,
               breaker: tuple[int, float, float] = (5, 5.0, 300.0)) -> Finish:
        threshold, open_s, max_open_s = breaker
        out = self._run(
            "finish", now, id=delivery_id, token=token, outcome=outcome,
            attempt=json.dumps(attempt, separators=(",", ":"), default=str),
            due=int((due or now) * 1000), error=error[:2000], category=category,
            record=json.dumps(record, default=str) if record is not None else "",
            transient=transient,
            cooldown_until=int((cooldown_until or 0) * 1000),
            pause=json.dumps(pause or {}), breaker={"threshold": threshold,
                                                     "open_ms": int(open_s * 1000),
                                                     "max_open_ms": int(max_open_s * 1000)})
        if text(out[0]) == "lost":
            return Finish(lost=True)
        return Finish(lost=False, newly_paused=bool(int(out[1])))

    # the scheduler --------------------------------------------------------------------
    def sweep(self, now: float, *, republish_after_seconds: float,
              limit: int = 1000) -> dict[str, int]:
        lost = {"at": now, "outcome": "lease_expired",
                "error": "the worker holding this delivery stopped before reporting back"}
        due, expired, republished = self._run(
            "sweep", now, limit=limit, stale_before=int((now - republish_after_seconds) * 1000),
            lost_attempt=json.dumps(lost))
        return {"due": int(due), "expired": int(expired), "republished": int(republished)}

    def add_stats(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add to the hub-wide counters: {(name, field): n} into the `stats:<name>` hashes,
        all or none (MULTI), so a caller that keeps its counts on failure never adds twice."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            for (name, field), n in counts.items():
                pipe.hincrby(self.key("stats", name), field, n)
            pipe.execute()

    # operators ------------------------------------------------------------------------
    def pause(self, connection: str, *, reason: str, by: str, now: float,
              detail: str = "") -> bool:
        info = {"reason": reason, "since": now, "by": by, "detail": detail}
        return bool(self._run("pause", now, conn=connection, info=json.dumps(info)))

    def resume(self, connection: str, now: float, *, chunk: int = 500) -> int:
        """Lift the pause and release every held delivery in order; returns how many."""
        released = 0
        first = True
        while True:
            with translate_redis_errors():
                before = int(self.redis.zcard(self.key("conn", connection, "held")))
            remaining = int(self._run("resume", now, conn=connection, limit=chunk, lift=first))
            first = False
            if remaining < 0:          # paused again while draining
                return released
            released += before - remaining
            if remaining == 0:
                return released

    def dead_letter_action(self, action: str, items: Sequence[tuple[str, str]], *, now: float,
                           by: str, reason: str = "") -> dict[str, str]:
        """Replay or discard DEAD deliveries. `items`: (delivery id, record key)."""
        note = json.dumps({"at": now, "action": action, "by": by, "reason": reason})
        out = self._run("replay", now, action=action, note=note,
                        items=[{"id": i, "rk": rk} for i, rk in items])
        return {item[0]: text(result) for item, result in zip(items, out, strict=True)}

    def remember_writes(self, refs: Sequence[str], values: Mapping[str, str],
                        window_seconds: int) -> None:
        """Two-way sync: what the hub just wrote to a record, under each of its refs."""
        if not values:
            return
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for ref in refs:
                pipe.hset(self.key("echo", ref), mapping=dict(values))  # type: ignore[arg-type]
                pipe.expire(self.key("echo", ref), window_seconds)
            pipe.execute()
