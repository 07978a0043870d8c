"""Alerts for on-call: a durable outbox in Redis, sent by the scheduler, never by the worker.

A worker that pauses a connection only appends to the outbox (one Redis command), so alert
delivery never blocks or fails a delivery. The scheduler's `send_alerts` posts each alert as
JSON to CRMHUB_ALERT_WEBHOOK_URL, retrying with backoff, and reports it to Sentry when
SENTRY_DSN is set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import httpx
import redis

from core.ledger.translate import translate_redis_errors

log = logging.getLogger("crmhub.alerts")

MAX_SEND_ATTEMPTS = 12          # ~ 1 h of backoff; then logged loudly and dropped


@dataclass(frozen=True)
class Alert:
    kind: str                    # connection_paused | ...
    connection: str
    summary: str
    detail: str = ""
    at: float = field(default_factory=time.time)
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        return {"source": "crmhub", **asdict(self)}


class AlertOutbox:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.key = f"{prefix}:alerts"

    def put(self, alert: Alert) -> None:
        entry = {"alert": alert.as_json(), "attempts": 0, "next_at": 0}
        with translate_redis_errors():
            self.redis.rpush(self.key, json.dumps(entry))

    def pending(self) -> int:
        with translate_redis_errors():
            return int(self.redis.llen(self.key))

    def send_due(self, send: Callable[[dict[str, Any]], None], now: float,
                 limit: int = 50) -> int:
        """Try each due alert once, oldest first. An alert leaves the outbox only once sent
        (or given up on); a failed one is kept in place with its next try pushed back.
        Single-flight, so two schedulers never send the same alert twice."""
        lock = self.redis.lock(f"{self.key}:lock", timeout=120, blocking=False)
        with translate_redis_errors():
            if not lock.acquire():
                return 0
        try:
            with translate_redis_errors():
                entries = [e.decode() for e in cast(list[bytes],
                                                    self.redis.lrange(self.key, 0, limit - 1))]
            return sum(self._try(raw, send, now) for raw in entries)
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _try(self, raw: str, send: Callable[[dict[str, Any]], None], now: float) -> int:
        entry = json.loads(raw)
        if entry["next_at"] > now:
            return 0
        try:
            send(entry["alert"])
        except Exception as exc:  # any failure to send: retry later, never lose silently
            entry["attempts"] += 1
            if entry["attempts"] >= MAX_SEND_ATTEMPTS:
                log.error("giving up on alert after %d attempts: %s (%s)",
                          entry["attempts"], entry["alert"], exc)
                self.redis.lrem(self.key, 1, raw)
                return 0
            entry["next_at"] = now + min(600, 2 ** entry["attempts"])
            log.warning("alert not sent (attempt %d): %s", entry["attempts"], exc)
            # replace in place (LSET by position would race with new alerts being added)
            pipe = self.redis.pipeline()
            pipe.linsert(self.key, "BEFORE", raw, json.dumps(entry))
            pipe.lrem(self.key, 1, raw)
            pipe.execute()
            return 0
        self.redis.lrem(self.key, 1, raw)
        return 1


def webhook_sender(url: str, client: httpx.Client) -> Callable[[dict[str, Any]], None]:
    def send(alert: dict[str, Any]) -> None:
        response = client.post(url, json=alert)
        response.raise_for_status()

    return send
