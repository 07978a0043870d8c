"""Alerting's operations, for the scheduler's task, the CLI and the operator API alike:

- `evaluate_alerts`: observe the ledger, run the state machine, record the result and queue
  the notices, single-flight (the beat runs it every CRMHUB_ALERT_INTERVAL_SECONDS);
- `send_notices`: hand queued notices to their sinks, recording each answer;
- `alerts_overview`: firing and recent alerts with what was sent where (`crmhub alerts`,
  GET /api/v1/alerts);
- `send_test_alert`: a test notice through every sink, at once (`crmhub alerts test`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from core.alerting.conditions import conditions
from core.alerting.evaluate import Evaluation, evaluate, new_alert_id
from core.alerting.model import AlertKind, AlertState, AlertStatus, iso_utc
from core.alerting.notices import notice
from core.alerting.sinks import Sender
from core.archive.mover import archive_lag_seconds
from core.config.model import Config
from core.ledger import Ledger
from core.ledger.alert_store import HISTORY_LENGTH as HISTORY_KEPT
from core.ledger.outbox import SendResult

log = logging.getLogger("crmhub.alerts")

Reporter = Callable[[dict[str, Any]], None]


def connection_objects(config: Config) -> dict[str, list[str]]:
    """Each connection and the objects its mappings write (where its deliveries wait)."""
    objects: dict[str, set[str]] = {name: set() for name in config.connections}
    for mapping in config.mappings.values():
        if mapping.connection in objects:
            objects[mapping.connection].add(mapping.object)
    return {name: sorted(objs) for name, objs in objects.items()}


def evaluate_alerts(
    ledger: Ledger,
    config: Config,
    *,
    sinks: list[str],
    public_url: str | None = None,
    now: float | None = None,
    report: Reporter | None = None,
    hot_retention_seconds: float | None = None,
) -> Evaluation | None:
    """One evaluation (None when another scheduler holds the lock). `report`: called with
    each notice (Sentry). `hot_retention_seconds`: how long done events may stay in Redis
    (the archive_behind alert measures the archiver's lag against it)."""
    now = time.time() if now is None else now
    with ledger.alerting.lock() as held:
        if not held:
            return None
        seen = ledger.alerting.observe(now, sorted(config.sources), connection_objects(config))
        if hot_retention_seconds is not None:
            lag = archive_lag_seconds(ledger, hot_retention_seconds, now)
            seen = replace(seen, archive_lag=lag)
        states = ledger.alerting.states()
        firing = {
            key: s.fired_at or now for key, s in states.items() if s.status == AlertStatus.FIRING
        }
        last_fired = {key: s.fired_at for key, s in states.items() if s.fired_at}
        result = evaluate(
            conditions(seen, config, firing, last_fired), states, now, config.alerts.rules
        )
        payloads = [notice(s, public_url, now) for s in result.notices]
        ledger.alerting.apply(result, [(p, sink) for p in payloads for sink in sinks])
        if result.resolved:  # episodes left the history: so do their notices' records
            kept = [s.id for s in ledger.alerting.states().values()]
            ledger.alerting.forget_notifications(
                kept + [s.id for s in ledger.alerting.history(HISTORY_KEPT)]
            )
    for payload in payloads:
        log.log(
            logging.WARNING if payload["status"] == AlertStatus.FIRING else logging.INFO,
            "alert %s %s: %s",
            payload["status"],
            payload["dedup_key"],
            payload["summary"],
            extra={"alert_id": payload["id"], "connection": payload["connection"]},
        )
        if report is not None:
            report(payload)
    return result


def send_notices(ledger: Ledger, senders: Mapping[str, Sender], now: float | None = None) -> int:
    """Try every due notice once; each sink's answer is recorded (`crmhub alerts`, /metrics)."""
    if not ledger.alerts.pending():
        return 0

    def record(result: SendResult) -> None:
        outcome = "sent" if result.ok else ("given_up" if result.final else "failed")
        ledger.alerting.record_notification(
            result.payload,
            result.sink,
            ok=result.ok,
            at=time.time(),
            error=result.error,
            attempts=result.attempts,
            outcome=outcome,
        )

    return ledger.alerts.send_due(senders, time.time() if now is None else now, on_result=record)


def alerts_overview(ledger: Ledger, limit: int = 50) -> dict[str, Any]:
    """`{"alerts": [{id, kind, status, connection, source, summary, fired_at, resolved_at,
    notifications: [{sink, ok, at, status, error, attempts}]}]}`: every alert firing now,
    then the most recent resolved ones (newest first), `limit` in all."""
    current = [s for s in ledger.alerting.states().values() if s.status == AlertStatus.FIRING]
    current.sort(key=lambda s: s.fired_at or 0, reverse=True)
    seen = {s.id for s in current}
    recent = [s for s in ledger.alerting.history(limit) if s.id not in seen]
    chosen = (current + recent)[: max(limit, len(current))]
    sent = ledger.alerting.notifications(s.id for s in chosen)
    return {"alerts": [_row(s, sent.get(s.id, [])) for s in chosen]}


def _row(state: AlertState, notifications: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": state.id,
        "kind": state.kind,
        "status": state.status,
        "connection": state.connection,
        "source": state.source,
        "summary": state.summary,
        "fired_at": iso_utc(state.fired_at),
        "resolved_at": iso_utc(state.resolved_at),
        "details": state.details,
        "notifications": [
            {
                "sink": n["sink"],
                "ok": n["ok"],
                "at": iso_utc(n["at"]),
                "status": n["status"],
                "error": n.get("error"),
                "attempts": n.get("attempts", 0),
            }
            for n in notifications
        ],
    }


def send_test_alert(
    senders: Mapping[str, Sender], public_url: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """A test notice through every sink, now; `{"sinks": [{sink, ok, error}]}`."""
    now = time.time() if now is None else now
    state = AlertState(
        key="test:crmhub",
        id=new_alert_id(),
        kind=AlertKind.TEST.value,
        status=AlertStatus.FIRING.value,
        summary="crmhub test alert: this sink receives crmhub's alerts",
        details={"command": "nothing to do: `crmhub alerts test` sent this"},
        fired_at=now,
    )
    payload = notice(state, public_url, now)
    results = []
    for name, send in sorted(senders.items()):
        try:
            send(payload)
            results.append({"sink": name, "ok": True, "error": None})
        except Exception as exc:  # reported per sink: the operator is testing exactly this
            results.append({"sink": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return {"id": payload["id"], "sinks": results}
