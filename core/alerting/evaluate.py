"""The alert state machine: a pure function from the conditions holding now and the stored
alert states to the new states and the notices to send.

Per dedup key:

    (none | resolved) --condition--> pending --held long enough--> firing --cleared--> resolved
    (none | resolved) --condition, no hold---------------------->  firing
    pending --cleared--> (forgotten)

Notices: a key is notified when what its sinks were last told differs from its status: at
once for a first firing and for a resolution; a re-fire within `flap_window` of the last
notice waits for the window's end (and is never sent if it resolved meanwhile, so a
flapping condition is notified at most once per window); a key still firing is reminded
every `renotify_every`. A notice carries the current count and details: a burst of 500 dead
letters updates one firing alert, it does not make 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from core.alerting.model import AlertState, AlertStatus, Condition
from core.config.alerting import AlertRules


@dataclass
class Evaluation:
    changed: dict[str, AlertState] = field(default_factory=dict)  # key -> its new state
    forgotten: list[str] = field(default_factory=list)  # keys to delete (pending, cleared)
    notices: list[AlertState] = field(default_factory=list)  # states to send, as they are now
    resolved: list[AlertState] = field(default_factory=list)  # episodes that ended now


def new_alert_id() -> str:
    return "alt_" + uuid.uuid4().hex[:20]


def evaluate(
    holding: list[Condition], states: dict[str, AlertState], now: float, rules: AlertRules
) -> Evaluation:
    out = Evaluation()
    active = {c.key: c for c in holding}
    for key, cond in active.items():
        state = states.get(key)
        new = _with_condition(state, cond, now)
        if new != state:
            out.changed[key] = new
    for key, state in states.items():
        if key in active:
            continue
        if state.status == AlertStatus.PENDING:
            out.forgotten.append(key)
        elif state.status == AlertStatus.FIRING:
            ended = replace(state, status=AlertStatus.RESOLVED.value, resolved_at=now)
            out.changed[key] = ended
    for key, state in list(out.changed.items()) + [
        (k, s) for k, s in states.items() if k not in out.changed and k not in out.forgotten
    ]:
        if _due(state, now, rules):
            sent = replace(
                state,
                notified_status=state.status,
                notified_at=now,
                notifications=state.notifications + 1,
            )
            out.changed[key] = sent
            out.notices.append(sent)
    out.resolved = [
        s
        for k, s in out.changed.items()
        if s.status == AlertStatus.RESOLVED and states.get(k, s).status != AlertStatus.RESOLVED
    ]
    return out


def _with_condition(state: AlertState | None, cond: Condition, now: float) -> AlertState:
    if state is None or state.status == AlertStatus.RESOLVED:
        begun = AlertState(
            key=cond.key,
            id=new_alert_id(),
            kind=cond.kind.value,
            status=AlertStatus.PENDING.value,
            summary=cond.summary,
            details=cond.details,
            connection=cond.connection,
            source=cond.source,
            seen_at=now,
            # what the sinks were told last carries over: a flapping key waits its window
            notified_status=state.notified_status if state else None,
            notified_at=state.notified_at if state else None,
            notifications=state.notifications if state else 0,
        )
        return _fire(begun, now) if cond.hold_seconds <= 0 else begun
    updated = replace(state, summary=cond.summary, details=cond.details)
    if state.status == AlertStatus.PENDING and now - state.seen_at >= cond.hold_seconds:
        return _fire(updated, now)
    return updated


def _fire(state: AlertState, now: float) -> AlertState:
    return replace(state, status=AlertStatus.FIRING.value, fired_at=now, resolved_at=None)


def _due(state: AlertState, now: float, rules: AlertRules) -> bool:
    """Whether `state` is to be sent now (see the module's doc)."""
    if state.status == AlertStatus.PENDING:
        return False
    last = state.notified_at
    if state.status == AlertStatus.RESOLVED:
        return state.notified_status == AlertStatus.FIRING
    if state.notified_status != AlertStatus.FIRING:  # firing, sinks not told yet
        return last is None or now - last >= rules.flap_window
    return last is not None and now - last >= rules.renotify_every
