"""One delivery attempt, start to finish: claim -> map -> write -> record the outcome.

This is the body of the Celery task, kept out of Celery so it can be called and tested as a
plain function. Everything it decides goes through the ledger's atomic scripts.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from connectors.base import WriteResult
from core.alerts import Alert
from core.config import RetryPolicy
from core.echo import canonical, echo_window, record_ref
from core.errors import DataError, HubError, LedgerUnavailable
from core.mapping import MappedRecord, map_event
from workers.policy import Decision, decide, describe
from workers.runtime import WorkerRuntime

log = logging.getLogger("crmhub.worker")

#: the longest a worker waits in place for the rate limiter before rescheduling instead
MAX_RATE_WAIT_SECONDS = 1.0


def run_delivery(rt: WorkerRuntime, delivery_id: str) -> str:
    """Attempt one delivery if it is this message's turn. Returns what happened."""
    token = uuid.uuid4().hex
    ledger = rt.ledger
    raw = ledger.raw_delivery(delivery_id)
    if not raw:
        return "missing"
    connection = rt.config.connections.get(raw["connection"])
    rate = (connection.rate_limit.requests, connection.rate_limit.per_seconds) \
        if connection and connection.rate_limit else None
    while True:
        claim = ledger.claim(delivery_id, token=token, now=time.time(),
                             lease_seconds=rt.settings.lease_seconds, rate=rate,
                             max_wait_seconds=MAX_RATE_WAIT_SECONDS)
        if claim.status != "wait":
            break
        time.sleep(claim.wait_ms / 1000)
    if claim.status != "claimed":
        return claim.status

    started = time.time()
    record: MappedRecord | None = None
    result = None
    error: BaseException | None = None
    try:
        record = _map(rt, raw)          # kept for the dead letter even if the write fails
        result = rt.connector(record.connection).deliver(record)
        _remember_for_echo(rt, record, result)
    except LedgerUnavailable:
        raise       # not the delivery's failure: the lease runs out and the sweeper retries
    except HubError as exc:
        error = exc
    except Exception as exc:  # a bug in the hub: loud, and retried, never a data error
        log.exception("delivery %s hit an internal error", delivery_id)
        _report_to_sentry(exc)
        error = exc
    finished = time.time()

    retry_policy = connection.retry if connection else RetryPolicy()
    age = finished - float(raw.get("first_attempt_at") or started * 1000) / 1000 \
        - float(raw.get("paused_ms") or 0) / 1000
    decision = decide(error, attempts=claim.attempts, age_seconds=age, now=finished,
                      retry=retry_policy)
    attempt = _attempt_entry(started, finished, decision, error, result)
    done = ledger.finish(
        delivery_id, token=token, now=finished, outcome=decision.outcome, attempt=attempt,
        due=decision.due, error=decision.error, category=decision.category,
        record=_dead_letter(record, error) if decision.outcome == "dead" else None,
        transient=decision.transient, cooldown_until=decision.cooldown_until,
        pause={"reason": "auth", "since": finished, "by": "crmhub",
               "detail": decision.error} if decision.outcome == "held" else None)
    if done.lost:
        log.warning("delivery %s: lease expired before the attempt finished; its outcome "
                    "(%s) was not recorded and the delivery runs again", delivery_id,
                    decision.outcome)
        return "lost"
    if done.newly_paused:
        _alert_paused(rt, raw["connection"], decision)
    return decision.outcome


def _remember_for_echo(rt: WorkerRuntime, record: MappedRecord, result: WriteResult) -> None:
    """Two-way sync: if a source echoes this connection's writes, remember what was written,
    under both the match value and the target's record id, so the echo is recognised."""
    window = echo_window(rt.config, record.connection, record.object)
    if window is None:
        return
    written = {name: canonical(value) for name, value in record.values().items()
               if name in result.written_fields}
    refs = [record_ref(record.connection, record.object, canonical(ref))
            for ref in {record.match_value, result.record_id} if ref]
    rt.ledger.remember_writes(refs, written, window)


def _map(rt: WorkerRuntime, raw: dict[str, str]) -> MappedRecord:
    mapping = rt.config.mappings.get(raw["mapping"])
    if mapping is None or mapping.connection not in rt.config.connections:
        raise DataError(f"mapping {raw['mapping']!r} (or its connection) is no longer in the "
                        "configuration; restore it and replay, or discard", category="mapping")
    event = rt.ledger.raw_event(raw["event_id"])
    body = json.loads(event["body"])
    return map_event(mapping, body)


def _dead_letter(record: MappedRecord | None, error: BaseException | None) -> dict[str, Any]:
    """What an operator needs to fix a dead letter: the mapped record (when mapping got that
    far), every field-level problem, and the target's answer (never our credentials)."""
    return {
        "record": record.as_json() if record else None,
        "problems": error.problems if isinstance(error, DataError) else [],
        "response": {"status": getattr(error, "status", None),
                     "excerpt": getattr(error, "excerpt", "")},
    }


def _attempt_entry(started: float, finished: float, decision: Decision,
                   error: BaseException | None, result: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": started, "duration_ms": round((finished - started) * 1000, 1),
        "outcome": decision.outcome,
    }
    if error is not None:
        entry["error"] = describe(error)
        entry["status"] = getattr(error, "status", None)
        entry["excerpt"] = getattr(error, "excerpt", "")
        if isinstance(error, DataError) and error.problems:
            entry["problems"] = error.problems
    if result is not None:
        entry |= {"status": result.status, "operation": result.operation,
                  "excerpt": result.excerpt[:200]}
        if result.skipped_fields:
            entry["skipped_fields"] = list(result.skipped_fields)
    if decision.due is not None:
        entry["next_attempt_at"] = decision.due
    return entry


def _alert_paused(rt: WorkerRuntime, connection: str, decision: Decision) -> None:
    summary = (f"crmhub paused connection {connection!r}: the target refused our credentials. "
               f"Events are held, not lost. Fix the credentials, then `crmhub resume "
               f"{connection}`.")
    log.error(summary + " (%s)", decision.error)
    _report_to_sentry(None, message=summary)
    if rt.settings.alert_webhook_url:
        rt.alerts.put(Alert(kind="connection_paused", connection=connection, summary=summary,
                        detail=decision.error))


def _report_to_sentry(exc: BaseException | None, message: str = "") -> None:
    try:
        import sentry_sdk

        if exc is not None:
            sentry_sdk.capture_exception(exc)
        elif message:
            sentry_sdk.capture_message(message, level="error")
    except Exception:  # reporting must never fail a delivery
        log.debug("sentry report failed", exc_info=True)
