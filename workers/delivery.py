"""One delivery attempt, start to finish: claim -> map -> write -> record the outcome.

This is the body of the Celery task, kept out of Celery so it can be called and tested as a
plain function. Everything it decides goes through the ledger's atomic scripts.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from connectors.base import WriteResult
from core.config import RetryPolicy
from core.errors import DataError, HubError, LedgerUnavailable
from core.mapping import MappedRecord, map_event
from core.vocabulary import HUB_ITSELF, AttemptOutcome, ClaimStatus, DeadCategory, Reason
from workers.drain import Budget, goes_on, objects_of
from workers.enrich import event_bodies, forget_refused_links, link_related
from workers.policy import Decision, decide, describe
from workers.read_room import MAX_RATE_WAIT_SECONDS
from workers.runtime import WorkerRuntime
from workers.two_way import Step, after_write, before_write

log = logging.getLogger("crmhub.worker")


@dataclass
class Item:
    """One claimed delivery in this attempt (a batch holds several)."""

    delivery_id: str
    raw: dict[str, str]
    attempts: int
    event: dict[str, str] | None = None  # read with the claim, or with the batch's others
    record: MappedRecord | None = None
    result: WriteResult | None = None  # set before the write: nothing to write (two-way)
    error: BaseException | None = None
    two_way: Step | None = None  # a two-way pair's decision (workers/two_way.py)


def run_delivery(rt: WorkerRuntime, delivery_id: str, *, adopt: bool = True) -> str:
    """Attempt one delivery if it is this message's turn (with a batching connector, also
    the other deliveries of its connection and object that are waiting), then drain: claim
    and write the connection's next ready deliveries while the budget lasts
    (workers/drain.py). Returns what happened to `delivery_id`.

    A message whose delivery already went out (drained or batched by another task) drains
    in its place (`adopt`), so a backlog moves at drain speed rather than one skipped message
    at a time. With the drain off (`CRMHUB_DRAIN_MAX=1`), only a batching connector adopts,
    one batch."""
    token = uuid.uuid4().hex
    budget = Budget.of(rt.settings)
    ledger = rt.ledger
    waited = 0.0
    while True:
        # one round trip: the claim, and the delivery and its event to work with
        claim = ledger.claim(
            delivery_id,
            token=token,
            now=time.time(),
            lease_seconds=rt.settings.lease_seconds,
            rates=rt.rate_limits,
            # all waits in place together stay within the budget, then it is rescheduled
            max_wait_seconds=max(0.0, MAX_RATE_WAIT_SECONDS - waited),
            with_data=True,
        )
        if claim.status != ClaimStatus.WAIT:
            break
        time.sleep(claim.wait_ms / 1000)
        waited += claim.wait_ms / 1000
    raw = dict(claim.delivery)
    if not raw:
        return Reason.MISSING
    connection = rt.config.connections.get(raw["connection"])
    if claim.status != ClaimStatus.CLAIMED:
        if adopt and claim.status == ClaimStatus.SKIP and connection is not None:
            if budget.enabled:
                _drain(rt, connection.name, token, budget)
            else:
                _adopt_waiting(rt, connection.name, raw.get("object", ""), delivery_id)
        return claim.status

    item = Item(delivery_id, raw, claim.attempts, event=dict(claim.event))
    outcomes = _run_claimed(rt, connection.name if connection else None, [item], token)
    budget.done += len(outcomes)
    if connection is not None and budget.enabled and goes_on(outcomes):
        _drain(rt, connection.name, token, budget)
    return outcomes[0]


def _run_claimed(
    rt: WorkerRuntime, connection: str | None, items: list[Item], token: str
) -> list[str]:
    """Attempt claimed deliveries (with a batching connector, with the waiting others of
    their connection and object) and record each one's outcome; the outcomes, first the
    given items'."""
    started = time.time()
    try:
        if connection is not None:
            items += _claim_companions(rt, connection, items[0].raw.get("object", ""), token)
        _attempt(rt, items)
    except LedgerUnavailable:
        raise  # not the deliveries' failure: their leases run out and the sweeper retries
    finished = time.time()
    config = rt.config.connections.get(connection) if connection else None
    retry = config.retry if config else RetryPolicy()
    outcomes = []
    seen: set[int] = set()
    for item in items:
        # a batch-wide failure is one failed request: it counts once toward the breaker
        repeat = item.error is not None and id(item.error) in seen
        if item.error is not None:
            seen.add(id(item.error))
        outcomes.append(_finish(rt, item, token, retry, started, finished, repeat=repeat))
    return outcomes


def _drain(rt: WorkerRuntime, connection: str, token: str, budget: Budget) -> None:
    """Claim the connection's next ready delivery and write it, again and again, while the
    budget lasts and the target takes writes. Each is claimed as its own message would claim
    it (Ledger.claim_next: its record's turn, pause, cooldown, circuit, rate limit), and one
    that fails is classified and scheduled alone; the drain then stops."""
    objects = objects_of(rt.config, connection)
    while budget.left():
        claim = rt.ledger.claim_next(
            connection,
            objects,
            token=token,
            now=time.time(),
            lease_seconds=rt.settings.lease_seconds,
            rates=rt.rate_limits,
        )
        if claim.status != ClaimStatus.CLAIMED:
            return  # paused, cooling down, circuit not closed, rate limit, or nothing waits
        raw = dict(claim.delivery)
        item = Item(raw["id"], raw, claim.attempts, event=dict(claim.event))
        outcomes = _run_claimed(rt, connection, [item], token)
        budget.done += len(outcomes)
        if not goes_on(outcomes):
            return


def _adopt_waiting(rt: WorkerRuntime, connection: str, obj: str, skipped: str) -> None:
    try:
        batching = rt.connector(connection).batch_size > 1
    except KeyError:
        return
    waiting = rt.ledger.first_ready(connection, obj) if batching else None
    if waiting and waiting != skipped:
        run_delivery(rt, waiting, adopt=False)


def _claim_companions(rt: WorkerRuntime, connection: str, obj: str, token: str) -> list[Item]:
    """With a batch API, the other waiting deliveries for the same connection and object go
    in the same request (each still its record's next write)."""
    try:
        size = rt.connector(connection).batch_size
    except KeyError:
        return []
    if size <= 1:
        return []
    claimed = rt.ledger.claim_batch(
        connection,
        obj,
        token=token,
        now=time.time(),
        lease_seconds=rt.settings.lease_seconds,
        limit=size - 1,
    )
    raws = rt.ledger.raw_deliveries([c.delivery_id for c in claimed])
    return [Item(c.delivery_id, raw, c.attempts) for c, raw in zip(claimed, raws, strict=True)]


def _attempt(rt: WorkerRuntime, items: list[Item]) -> None:
    """Map each delivery, then write the mapped ones (in one request where the connector
    can). Each item ends with either a result or an error."""
    unread = [item for item in items if item.event is None]
    for item, event in zip(
        unread, rt.ledger.raw_events([i.raw["event_id"] for i in unread]), strict=True
    ):
        item.event = event
    try:
        _prepare(rt, items)
    except LedgerUnavailable:
        raise
    except Exception as exc:  # a bug in the hub: loud, and retried, never a data error
        log.exception("delivery %s hit an internal error", items[0].delivery_id)
        _report_to_sentry(exc)
        for item in items:
            item.error = exc
        return
    for item in items:
        if item.result is not None and item.record is not None:  # nothing to write
            after_write(rt, item.two_way, item.record, item.result)
    ready = [item for item in items if item.error is None and item.result is None]
    if not ready:
        return
    assert ready[0].record is not None
    try:
        connector = rt.connector(ready[0].record.connection)
        records = [item.record for item in ready if item.record is not None]
        if len(records) == 1:
            outcomes: list[WriteResult | HubError] = [connector.deliver(records[0])]
        else:
            outcomes = connector.deliver_batch(records)
    except LedgerUnavailable:
        raise
    except HubError as exc:
        outcomes = [exc] * len(ready)
    except Exception as exc:  # a bug in the hub: loud, and retried, never a data error
        log.exception(
            "delivery %s hit an internal error",
            ready[0].delivery_id,
            extra=_about(ready[0]),
        )
        _report_to_sentry(exc)
        for item in ready:
            item.error = exc
        return
    for item, outcome in zip(ready, outcomes, strict=True):
        if isinstance(outcome, HubError):
            item.error = outcome
            if item.record is not None and item.record.related:
                forget_refused_links(rt, item.record, outcome)
        else:
            item.result = outcome
            assert item.record is not None
            after_write(rt, item.two_way, item.record, outcome)


def _prepare(rt: WorkerRuntime, items: list[Item]) -> None:
    """Fetch (a `fetch:` mapping), map, then find or create the related records and link
    them (workers/enrich.py); each item ends with a record or an error."""
    bodies = event_bodies(rt, [(item.raw, item.event or {}) for item in items])
    for item, body in zip(items, bodies, strict=True):
        if isinstance(body, HubError):
            item.error = body
            continue
        try:
            # kept for the dead letter if the write fails
            item.record = _map(rt, item.raw, body)
            item.record, item.two_way, item.result = before_write(
                rt, item.raw["mapping"], body, item.record
            )
        except HubError as exc:
            item.error = exc
    relating = [
        item for item in items if item.error is None and item.record and item.record.related
    ]
    if relating:
        linked = link_related(rt, [item.record for item in relating if item.record])
        for item, outcome in zip(relating, linked, strict=True):
            if isinstance(outcome, HubError):
                item.error = outcome
            else:
                item.record = outcome


def _finish(
    rt: WorkerRuntime,
    item: Item,
    token: str,
    retry: RetryPolicy,
    started: float,
    finished: float,
    *,
    repeat: bool = False,
) -> str:
    """`repeat`: the item shares an error already recorded for another item of the batch."""
    raw = item.raw
    age = (
        finished
        - float(raw.get("first_attempt_at") or started * 1000) / 1000
        - float(raw.get("paused_ms") or 0) / 1000
    )
    decision = decide(
        item.error, attempts=item.attempts, age_seconds=age, now=finished, retry=retry
    )
    if repeat and decision.outcome == AttemptOutcome.RETRY:
        decision = replace(decision, transient=False)  # counted with the first item
    attempt = _attempt_entry(started, finished, decision, item.error, item.result)
    dead = decision.outcome == AttemptOutcome.DEAD
    done = rt.ledger.finish(
        item.delivery_id,
        token=token,
        now=finished,
        outcome=decision.outcome,
        attempt=attempt,
        due=decision.due,
        error=decision.error,
        category=decision.category,
        dead_letter=_dead_letter(item.record, item.error) if dead else None,
        transient=decision.transient,
        cooldown_until=decision.cooldown_until,
        pause={"reason": "auth", "since": finished, "by": HUB_ITSELF, "detail": decision.error}
        if decision.outcome == AttemptOutcome.HELD
        else None,
    )
    if done.lost:
        log.warning(
            "delivery %s: lease expired before the attempt finished; its outcome "
            "(%s) was not recorded and the delivery runs again",
            item.delivery_id,
            decision.outcome,
            extra=_about(item),
        )
        return "lost"
    if done.newly_paused:
        _alert_paused(rt, raw["connection"], decision)
    return decision.outcome


def _map(rt: WorkerRuntime, raw: dict[str, str], body: Any) -> MappedRecord:
    mapping = rt.config.mappings.get(raw["mapping"])
    if mapping is None or mapping.connection not in rt.config.connections:
        raise DataError(
            f"mapping {raw['mapping']!r} (or its connection) is no longer in the "
            "configuration; restore it and replay, or discard",
            category=DeadCategory.MAPPING,
        )
    return map_event(mapping, body)


def _dead_letter(record: MappedRecord | None, error: BaseException | None) -> dict[str, Any]:
    """What an operator needs to fix a dead letter: the mapped record (when mapping got that
    far), every field-level problem, and the target's answer (never our credentials)."""
    return {
        "record": record.as_json() if record else None,
        "problems": error.problems if isinstance(error, DataError) else [],
        "response": {
            "status": getattr(error, "status", None),
            "excerpt": getattr(error, "excerpt", ""),
        },
    }


def _attempt_entry(
    started: float, finished: float, decision: Decision, error: BaseException | None, result: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": started,
        "duration_ms": round((finished - started) * 1000, 1),
        "outcome": decision.outcome,
    }
    if error is not None:
        entry["error"] = describe(error)
        entry["status"] = getattr(error, "status", None)
        entry["excerpt"] = getattr(error, "excerpt", "")
        if isinstance(error, DataError) and error.problems:
            entry["problems"] = error.problems
    if result is not None:
        entry |= {
            "status": result.status,
            "operation": result.operation,
            "excerpt": result.excerpt[:200],
        }
        if result.skipped_fields:
            entry["skipped_fields"] = list(result.skipped_fields)
    if decision.due is not None:
        entry["next_attempt_at"] = decision.due
    return entry


def _about(item: Item) -> dict[str, str | None]:
    """What a log line about this delivery carries (CRMHUB_LOG_FORMAT=json: core/logs.py)."""
    return {
        "delivery_id": item.delivery_id,
        "event_id": item.raw.get("event_id"),
        "connection": item.raw.get("connection"),
        "mapping": item.raw.get("mapping"),
    }


def _alert_paused(rt: WorkerRuntime, connection: str, decision: Decision) -> None:
    """Logged here; on-call hears of it from the alert evaluator (core/alerting: the
    connection_paused alert, within CRMHUB_ALERT_INTERVAL_SECONDS), once, with its sinks."""
    log.error(
        "crmhub paused connection %r: the target refused our credentials. Events are held, "
        "not lost. Fix the credentials, then `crmhub resume %s`. (%s)",
        connection,
        connection,
        decision.error,
        extra={"connection": connection},
    )


def _report_to_sentry(exc: BaseException | None, message: str = "") -> None:
    try:
        import sentry_sdk

        if exc is not None:
            sentry_sdk.capture_exception(exc)
        elif message:
            sentry_sdk.capture_message(message, level="error")
    except Exception:  # reporting must never fail a delivery
        log.debug("sentry report failed", exc_info=True)
