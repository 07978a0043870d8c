"""The scheduler's periodic work, as plain functions (Celery beat triggers them).

`sweep` is single-flight across every worker host: the ledger's sweep lock has a TTL, so two
beats (or a slow sweep overlapping the next tick) never sweep at once.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import httpx

from core.alerting.report import maybe_send_report
from core.alerting.service import evaluate_alerts, send_notices
from core.alerting.sinks import build_senders, sink_names
from core.observability import report_alert
from workers.runtime import WorkerRuntime

log = logging.getLogger("crmhub.sweeper")

LOCK_TTL_SECONDS = 30


def sweep(rt: WorkerRuntime, now: float | None = None) -> dict[str, int]:
    with rt.ledger.sweep_lock(LOCK_TTL_SECONDS) as held:
        if not held:
            return {"skipped": 1}
        totals = {"due": 0, "expired": 0, "republished": 0}
        while True:  # bounded batches keep each script short
            swept = rt.ledger.sweep(
                time.time() if now is None else now,
                republish_after_seconds=rt.settings.republish_after_seconds,
            )
            for key, value in dataclasses.asdict(swept).items():
                totals[key] += value
            if swept.most() < 1000:
                break
        if any(totals.values()):
            log.info(
                "sweep: %(due)d due retries, %(expired)d expired leases, "
                "%(republished)d lost messages republished",
                totals,
            )
        return totals


def send_alerts(rt: WorkerRuntime, now: float | None = None) -> int:
    """Evaluate the alert rules, queue the health report when due, then hand due notices to
    their sinks (core/alerting)."""
    settings, config = rt.settings, rt.config
    sinks, public_url = sink_names(config.alerts, settings.alert_webhook_url), settings.public_url
    evaluate_alerts(
        rt.ledger,
        config,
        sinks=sinks,
        public_url=public_url,
        now=now,
        report=report_alert,
        hot_retention_seconds=settings.hot_retention_seconds,
    )
    maybe_send_report(rt.ledger, config, sinks=sinks, public_url=public_url, now=now)
    if not rt.ledger.alerts.pending():
        return 0
    with httpx.Client(timeout=5.0) as client:
        senders = build_senders(config.alerts, settings.environ, settings.alert_webhook_url, client)
        return send_notices(rt.ledger, senders, now)
