"""The ledger in Redis: the durable record of every accepted event and every delivery.

All state changes are Lua scripts (one atomic step each); reads are plain commands. Redis
errors are translated here, once, into LedgerUnavailable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis

from core.errors import LedgerUnavailable
from core.ledger.model import NewEvent, RecordResult, iso_from_ms
from core.queue import HintQueue

def _script(name: str) -> str:
    return resources.files("core.ledger").joinpath(name).read_text(encoding="utf-8")


@contextmanager
def translate_redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise LedgerUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        # OOM under noeviction, MISCONF (AOF write failing), READONLY replica: all mean the
        # store cannot take the write right now, which senders should retry.
        if str(exc).startswith(("OOM", "MISCONF", "READONLY", "LOADING", "BUSY")):
            raise LedgerUnavailable(f"Redis refused the write: {exc}") from exc
        raise


class Ledger:
    def __init__(self, client: redis.Redis, *, prefix: str, queue: HintQueue,
                 dedupe_ttl_seconds: int = 30 * 24 * 3600) -> None:
        self.redis = client
        self.prefix = prefix
        self.queue = queue
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self._record = client.register_script(_script("record.lua"))

    # keys -----------------------------------------------------------------------------
    def event_key(self, event_id: str) -> str:
        return f"{self.prefix}:evt:{event_id}"

    def delivery_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:dlv:{delivery_id}"

    def dedupe_key(self, source: str, external_id: str) -> str:
        return f"{self.prefix}:dedupe:{source}:{external_id}"

    # writes ---------------------------------------------------------------------------
    def record(self, events: Sequence[NewEvent], now: float) -> list[RecordResult]:
        """Record events and their deliveries (publishing each delivery) atomically.

        A repeat of an already recorded (source, external id) records nothing and reports the
        first event's id. Raises LedgerUnavailable if Redis cannot take the write.
        """
        now_ms = int(now * 1000)
        payload = {
            "prefix": self.prefix, "now": now_ms, "ttl": self.dedupe_ttl_seconds,
            "queue": self.queue.key,
            "events": [self._event_payload(ev, now_ms) for ev in events],
        }
        with translate_redis_errors():
            flat = self._record(args=[json.dumps(payload, separators=(",", ":"))])
        return [RecordResult(_text(flat[i]), int(flat[i + 1]), bool(int(flat[i + 2])))
                for i in range(0, len(flat), 3)]

    def _event_payload(self, ev: NewEvent, now_ms: int) -> dict[str, Any]:
        received_ms = int(ev.received_at * 1000)
        fields = [
            "id", ev.id, "source", ev.source, "type", ev.type or "",
            "external_id", ev.external_id, "received_at", received_ms,
            "occurred_at", ev.occurred_at or "", "state", ev.state.value,
            "headers", json.dumps(ev.headers, separators=(",", ":")), "body", ev.body,
            "deliveries", ",".join(d.id for d in ev.deliveries),
        ]
        return {
            "dedupe": self.dedupe_key(ev.source, ev.external_id), "id": ev.id,
            "source": ev.source, "received": received_ms, "fields": fields,
            "deliveries": [{
                "id": d.id, "connection": d.connection,
                "message": self.queue.message(d.id),
                "fields": ["id", d.id, "event_id", ev.id, "mapping", d.mapping,
                           "connection", d.connection, "object", d.object,
                           "attempts", 0, "created_at", now_ms, "published_at", now_ms],
            } for d in ev.deliveries],
        }

    # reads ----------------------------------------------------------------------------
    def ping(self) -> None:
        with translate_redis_errors():
            self.redis.ping()

    def event(self, event_id: str) -> dict[str, Any] | None:
        """The recorded event as the `events show` contract describes it, or None."""
        with translate_redis_errors():
            raw = _decode(self.redis.hgetall(self.event_key(event_id)))
            if not raw:
                return None
            ids = [i for i in raw.get("deliveries", "").split(",") if i]
            pipe = self.redis.pipeline(transaction=False)
            for delivery_id in ids:
                pipe.hgetall(self.delivery_key(delivery_id))
            deliveries = [_delivery_view(_decode(d)) for d in pipe.execute() if d]
        return {
            "id": raw["id"],
            "source": raw["source"],
            "type": raw.get("type") or None,
            "external_id": raw["external_id"],
            "received_at": iso_from_ms(raw["received_at"]),
            "occurred_at": raw.get("occurred_at") or None,
            "state": raw["state"],
            "headers": json.loads(raw.get("headers") or "{}"),
            "body": _parse_body(raw.get("body", "")),
            "deliveries": deliveries,
        }

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = _decode(self.redis.hgetall(self.delivery_key(delivery_id)))
        return _delivery_view(raw) if raw else None

    def recent_events(self, source: str | None = None, limit: int = 50) -> list[str]:
        key = f"{self.prefix}:events:src:{source}" if source else f"{self.prefix}:events"
        with translate_redis_errors():
            return [_text(i) for i in self.redis.zrevrange(key, 0, limit - 1)]



def _delivery_view(raw: dict[str, str]) -> dict[str, Any]:
    return {
        "id": raw["id"], "event_id": raw["event_id"], "mapping": raw["mapping"],
        "connection": raw["connection"], "object": raw.get("object"),
        "state": raw["state"], "attempts": int(raw.get("attempts", 0)),
        "created_at": iso_from_ms(raw.get("created_at")),
        "updated_at": iso_from_ms(raw.get("updated_at")),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _parse_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
