"""The alert outbox: alerts for on-call, kept in the ledger's Redis until sent (`ledger.alerts`).

A worker that pauses a connection only appends here (one Redis command), so alert delivery
never blocks or fails a delivery; the scheduler sends them (workers/sweeper.py, core/alerts.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, cast

import redis

from core.alerts import Alert
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors

log = logging.getLogger("crmhub.alerts")

MAX_SEND_ATTEMPTS = 12  # ~ 1 h of backoff; then logged loudly and dropped


class AlertOutbox:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.key = keys.alerts()
        self._lock_key = keys.alerts_lock()

    def put(self, alert: Alert) -> None:
        entry = {"alert": alert.as_json(), "attempts": 0, "next_at": 0}
        with translate_redis_errors():
            self.redis.rpush(self.key, json.dumps(entry))

    def pending(self) -> int:
        with translate_redis_errors():
            return int(self.redis.llen(self.key))

    def send_due(self, send: Callable[[dict[str, Any]], None], now: float, limit: int = 50) -> int:
        """Try each due alert once, oldest first. An alert leaves the outbox only once sent
        (or given up on); a failed one is kept in place with its next try pushed back.
        Single-flight, so two schedulers never send the same alert twice."""
        lock = self.redis.lock(self._lock_key, timeout=120, blocking=False)
        with translate_redis_errors():
            if not lock.acquire():
                return 0
        try:
            with translate_redis_errors():
                entries = [
                    e.decode() for e in cast(list[bytes], self.redis.lrange(self.key, 0, limit - 1))
                ]
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
                log.error(
                    "giving up on alert after %d attempts: %s (%s)",
                    entry["attempts"],
                    entry["alert"],
                    exc,
                )
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
