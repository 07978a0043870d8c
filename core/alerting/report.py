"""The scheduled health report (`alerts.report: {every, at, timezone, sinks}`): the health
check (core/health.py) sent to the sinks, through the same durable outbox as alerts."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.alerting.evaluate import new_alert_id
from core.alerting.model import AlertKind, iso_utc
from core.config.alerting import ReportSchedule
from core.config.model import Config
from core.health import health_report, report_text
from core.ledger import Ledger

DAY = 86400.0


def last_slot(schedule: ReportSchedule, now: float) -> float:
    """The latest scheduled time at or before `now`: for a daily or longer period, the last
    `at` (on its weekday, if given) in its time zone; for a shorter one, `now`."""
    if schedule.every < DAY:
        return now
    zone = ZoneInfo(schedule.timezone)
    local = datetime.fromtimestamp(now, tz=zone)
    slot = local.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
    while slot > local or (schedule.weekday is not None and slot.weekday() != schedule.weekday):
        slot -= timedelta(days=1)
    return slot.timestamp()


def report_due(schedule: ReportSchedule, last_sent: float, now: float) -> bool:
    if schedule.every < DAY:
        return now - last_sent >= schedule.every
    # at most one per period, at its slot
    return last_slot(schedule, now) > last_sent and now - last_sent >= schedule.every - DAY / 2


def report_sinks(config: Config, sinks: list[str]) -> list[str]:
    """`report.sinks`, else every sink but PagerDuty's (a report is not an incident)."""
    schedule = config.alerts.report
    if schedule is not None and schedule.sinks:
        return [s for s in schedule.sinks if s in sinks]
    return [
        s
        for s in sinks
        if s not in config.alerts.sinks or config.alerts.sinks[s].type != "pagerduty"
    ]


def report_notice(report: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "id": new_alert_id(),
        "kind": AlertKind.HEALTH_REPORT.value,
        "status": "report",
        "severity": "info",
        "connection": None,
        "source": None,
        "summary": f"crmhub health report, last {report['window']}",
        "details": {"text": report_text(report), "report": report},
        "dedup_key": "health_report",
        "at": iso_utc(now),
        "links": {},
    }


def maybe_send_report(
    ledger: Ledger,
    config: Config,
    *,
    sinks: list[str],
    public_url: str | None = None,
    now: float | None = None,
) -> bool:
    """Queue the health report when its time has come; True if it was queued. The first
    call after the report is configured only starts the clock."""
    schedule = config.alerts.report
    if schedule is None:
        return False
    now = time.time() if now is None else now
    with ledger.alerting.lock() as held:
        if not held:
            return False
        last = ledger.alerting.report_sent_at()
        if last is None:
            ledger.alerting.mark_report_sent(now)
            return False
        if not report_due(schedule, last, now):
            return False
        report = health_report(ledger, config, schedule.since or schedule.every, now)
        payload = report_notice(report, now)
        ledger.alerting.queue(payload, report_sinks(config, sinks))
        ledger.alerting.mark_report_sent(now)
    return True
