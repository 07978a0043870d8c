"""The scheduler's periodic work, as plain functions (Celery beat triggers them).

`sweep` is single-flight across every worker host: a Redis lock with a TTL means two beats
(or a slow sweep overlapping the next tick) never sweep at once.
"""

from __future__ import annotations

import contextlib
import logging
import time

import httpx
from redis.exceptions import LockError

from core.alerts import webhook_sender
from workers.runtime import WorkerRuntime

log = logging.getLogger("crmhub.sweeper")

LOCK_TTL_SECONDS = 30


def sweep(rt: WorkerRuntime, now: float | None = None) -> dict[str, int]:
    lock = rt.ledger.redis.lock(f"{rt.settings.key_prefix}:sweep:lock",
                                timeout=LOCK_TTL_SECONDS, blocking=False)
    if not lock.acquire():
        return {"skipped": 1}
    try:
        totals = {"due": 0, "expired": 0, "republished": 0}
        while True:                    # bounded batches keep each script short
            counts = rt.ledger.sweep(time.time() if now is None else now,
                                     republish_after_seconds=rt.settings.republish_after_seconds)
            for key, value in counts.items():
                totals[key] += value
            if max(counts.values()) < 1000:
                break
        if any(totals.values()):
            log.info("sweep: %(due)d due retries, %(expired)d expired leases, "
                     "%(republished)d lost messages republished", totals)
        return totals
    finally:
        with contextlib.suppress(LockError):   # expired mid-sweep: nothing left to release
            lock.release()


def send_alerts(rt: WorkerRuntime, now: float | None = None) -> int:
    url = rt.settings.alert_webhook_url
    if not url or not rt.alerts.pending():
        return 0
    with httpx.Client(timeout=5.0) as client:
        return rt.alerts.send_due(webhook_sender(url, client),
                                  time.time() if now is None else now)
