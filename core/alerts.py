"""Alerts for on-call: a durable outbox in Redis, sent by the scheduler, never by the worker.

A worker that pauses a connection only appends to the outbox (one Redis command), so alert
delivery never blocks or fails a delivery. The scheduler's `send_alerts` posts each alert as
JSON to CRMHUB_ALERT_WEBHOOK_URL, retrying with backoff, and reports it to Sentry when
SENTRY_DSN is set.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import httpx
import redis

from core.ledger.store import translate_redis_errors

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
        """Try each due alert once; failed ones go back with a later `next_at`."""
        sent = 0
        for _ in range(min(limit, self.pending())):
            with translate_redis_errors():
                raw = cast(bytes | None, self.redis.lpop(self.key))
            if raw is None:
                break
            entry = json.loads(raw)
            if entry["next_at"] > now:
                self.redis.rpush(self.key, raw)
                continue
            try:
                send(entry["alert"])
                sent += 1
            except Exception as exc:  # any failure to send: retry later, never lose silently
                entry["attempts"] += 1
                if entry["attempts"] >= MAX_SEND_ATTEMPTS:
                    log.error("giving up on alert after %d attempts: %s (%s)",
                              entry["attempts"], entry["alert"], exc)
                    continue
                entry["next_at"] = now + min(600, 2 ** entry["attempts"])
                log.warning("alert not sent (attempt %d): %s", entry["attempts"], exc)
                self.redis.rpush(self.key, json.dumps(entry))
        return sent


def webhook_sender(url: str, client: httpx.Client) -> Callable[[dict[str, Any]], None]:
    def send(alert: dict[str, Any]) -> None:
        response = client.post(url, json=alert)
        response.raise_for_status()

    return send
