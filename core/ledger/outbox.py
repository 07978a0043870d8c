"""The alert outbox: notices for on-call, kept in the ledger's Redis until each sink took them
(`ledger.alerts`).

One entry per (notice, sink), so a sink that refuses is retried, with backoff, for that sink
only; the others are not sent twice. The evaluator queues entries in the same MULTI that
records the alert's state (core/ledger/alert_store.py); the scheduler's task sends them
(core/alerting/service.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline

from core.errors import AlertSinkError
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors

log = logging.getLogger("crmhub.alerts")

MAX_SEND_ATTEMPTS = 12  # ~ 1 h of backoff; then logged loudly, recorded as failed and dropped
#: the sink of entries queued before there were several (CRMHUB_ALERT_WEBHOOK_URL's)
DEFAULT_SINK = "webhook"

Sender = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SendResult:
    """One try of one entry, for the caller to record."""

    payload: dict[str, Any]
    sink: str
    ok: bool
    error: str
    attempts: int
    final: bool  # sent, or given up on: the entry left the outbox


class AlertOutbox:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.key = keys.alerts()
        self._lock_key = keys.alerts_lock()

    def put(self, payload: dict[str, Any], sink: str = DEFAULT_SINK) -> None:
        with translate_redis_errors():
            self.redis.rpush(self.key, _entry(payload, sink))

    def put_in(self, pipe: Pipeline, payload: dict[str, Any], sink: str) -> None:
        """Queue within the caller's transaction."""
        pipe.rpush(self.key, _entry(payload, sink))

    def pending(self) -> int:
        with translate_redis_errors():
            return int(self.redis.llen(self.key))

    def entries(self) -> list[dict[str, Any]]:
        with translate_redis_errors():
            return [json.loads(e) for e in cast(list[bytes], self.redis.lrange(self.key, 0, -1))]

    def send_due(
        self,
        senders: Mapping[str, Sender],
        now: float,
        limit: int = 200,
        on_result: Callable[[SendResult], None] | None = None,
    ) -> int:
        """Try each due entry once, oldest first; returns how many were sent. An entry leaves
        the outbox once its sink took it (or it was given up on); a failed one stays in
        place with its next try pushed back. Single-flight, so two schedulers never send
        the same entry twice. An entry for a sink no longer configured is given up on."""
        lock = self.redis.lock(self._lock_key, timeout=120, blocking=False)
        with translate_redis_errors():
            if not lock.acquire():
                return 0
        try:
            with translate_redis_errors():
                raws = [
                    e.decode() for e in cast(list[bytes], self.redis.lrange(self.key, 0, limit - 1))
                ]
            sent = 0
            for raw in raws:
                result = self._try(raw, senders, now)
                if result is None:
                    continue
                sent += result.ok
                if on_result is not None:
                    on_result(result)
            return sent
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _try(self, raw: str, senders: Mapping[str, Sender], now: float) -> SendResult | None:
        entry = json.loads(raw)
        if entry["next_at"] > now:
            return None
        sink = entry.get("sink", DEFAULT_SINK)
        payload = entry["alert"]
        send = senders.get(sink)
        try:
            if send is None:
                raise AlertSinkError(f"alert sink {sink!r} is no longer configured")
            send(payload)
        except Exception as exc:  # any failure to send: retry later, never lose silently
            entry["attempts"] += 1
            error = f"{type(exc).__name__}: {exc}"[:500]
            with translate_redis_errors():
                if send is None or entry["attempts"] >= MAX_SEND_ATTEMPTS:
                    log.error(
                        "giving up on alert %s for sink %s after %d attempt(s): %s",
                        payload.get("id"),
                        sink,
                        entry["attempts"],
                        error,
                    )
                    self.redis.lrem(self.key, 1, raw)
                    return SendResult(payload, sink, False, error, entry["attempts"], True)
                entry["next_at"] = now + min(600, 2 ** entry["attempts"])
                log.warning(
                    "alert %s not sent to sink %s (attempt %d): %s",
                    payload.get("id"),
                    sink,
                    entry["attempts"],
                    error,
                )
                # replace in place (LSET by position would race with new entries being added)
                pipe = self.redis.pipeline()
                pipe.linsert(self.key, "BEFORE", raw, json.dumps(entry))
                pipe.lrem(self.key, 1, raw)
                pipe.execute()
            return SendResult(payload, sink, False, error, entry["attempts"], False)
        with translate_redis_errors():
            self.redis.lrem(self.key, 1, raw)
        return SendResult(payload, sink, True, "", entry["attempts"] + 1, True)


def _entry(payload: dict[str, Any], sink: str) -> str:
    return json.dumps({"alert": payload, "sink": sink, "attempts": 0, "next_at": 0})
