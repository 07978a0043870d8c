"""Two-way sync's step in a delivery (the decision is core/two_way.py's): before the write,
which fields of a pair mapping's record to write, or none; after it, what the sides now hold.
And the one-way echo window (`sources.<s>.echo`, core/echo.py): what was written, remembered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from connectors.base import WriteResult
from core.changes import Stamp
from core.config.model import MappingConfig
from core.config.two_way import Pair, field_names, origin, pair_mappings, pair_of
from core.echo import canonical, echo_window, record_ref
from core.ledger.agreed import read_known, record_known
from core.mapping import MappedRecord
from core.mapping.record import FieldResult
from core.two_way import Change, Known, Plan, Twin, first_look, settle, settled, slot
from workers.read_room import take_read_room
from workers.runtime import WorkerRuntime


@dataclass(frozen=True)
class Step:
    """A pair mapping's delivery: the change, what the pair knew, and the plan."""

    pair: Pair
    record: str  # the pair's key of the record: its match value
    change: Change
    known: Known
    plan: Plan
    source_id: str | None
    started_ms: int  # before the write: a source change stamped earlier predates it


_ABSENT = object()


def field_of(record: Any, name: str, absent: Any = None) -> Any:
    """A field of a CRM record as its listing or read gives it: at the top (Salesforce, a
    read's flat properties) or under `properties` (a HubSpot search result)."""
    if not isinstance(record, dict):
        return absent
    if name in record:
        return record[name]
    props = record.get("properties")
    return props.get(name, absent) if isinstance(props, dict) else absent


def _stamp_ms(record: Any, name: str) -> int | None:
    text = field_of(record, name)
    stamp = Stamp.parse(str(text)) if text not in (None, "") else None
    return stamp.ms if stamp is not None else None


def _cursor(rt: WorkerRuntime, mapping: MappingConfig) -> str:
    poll = rt.config.sources[mapping.source].poll
    assert poll is not None  # a pair's sources poll (core/config/two_way.py checks)
    return poll.cursor


def before_write(
    rt: WorkerRuntime, mapping_name: str, body: Any, record: MappedRecord
) -> tuple[MappedRecord, Step | None, WriteResult | None]:
    """The record to write (only the fields the pair's decision keeps), the step to finish
    after the write, and a result when nothing is to be written (the write is not made)."""
    mapping = rt.config.mappings.get(mapping_name)
    pair = pair_of(rt.config, mapping) if mapping is not None else None
    side = origin(rt.config, mapping) if mapping is not None else None
    if mapping is None or pair is None or side is None or not record.match_value:
        return record, None, None
    (reverse,) = [m for m in pair_mappings(rt.config, pair.name) if m.name != mapping.name]
    stamp = _stamp_ms(body, _cursor(rt, mapping))
    if stamp is None:
        return record, None, None  # not a listed record (a webhook): written as it is
    change = Change(
        side=side,
        target=record.connection,
        stamp_ms=stamp,
        values=record.values(),
        names=field_names(mapping),
        # only the fields the listing has (a field it does not select says nothing)
        own={
            spec.name: value
            for spec in reverse.fields
            if (value := field_of(body, spec.name, _ABSENT)) is not _ABSENT
        },
    )
    known = read_known(rt.ledger, pair.name, record.match_value)
    plan = first_look(change, known)
    if plan.unsettled:
        plan = settle(change, known, _twin(rt, record, _cursor(rt, reverse)), pair, plan)
    source_id = field_of(body, "Id") or field_of(body, "id")
    step = Step(
        pair,
        record.match_value,
        change,
        known,
        plan,
        source_id and str(source_id),
        int(time.time() * 1000),
    )
    if not plan.write:
        return record, step, WriteResult("unchanged", excerpt=_why(plan))
    kept = {*plan.write, record.match_field}
    return replace(record, fields=tuple(f for f in record.fields if f.name in kept)), step, None


def _twin(rt: WorkerRuntime, record: MappedRecord, stamp_field: str) -> Twin | None:
    """The target's record as it is now: the mapped fields and its modification stamp."""
    probe = replace(
        record,
        fields=tuple(
            FieldResult(name, None, None, "target") for name in (*record.values(), stamp_field)
        ),
    )
    take_read_room(rt, record.connection, why="two-way: the read of the target's record")
    found = rt.connector(record.connection).read(probe)
    if found is None:
        return None
    return Twin(found, _stamp_ms(found, stamp_field))


def _why(plan: Plan) -> str:
    parts = [
        f"{what}: {', '.join(names)}"
        for what, names in (
            ("held by the target already", plan.held),
            ("older than the value synced", plan.stale),
            ("lost a conflict", plan.lost),
        )
        if names
    ]
    return "two-way: nothing to write (" + "; ".join(parts) + ")"


def after_write(
    rt: WorkerRuntime, step: Step | None, record: MappedRecord, result: WriteResult
) -> None:
    """What the sides hold now that the write succeeded (or was not needed), and the echo
    window's memory of it."""
    if step is not None:
        ids = {step.change.side: step.source_id or "", record.connection: result.record_id or ""}
        record_known(
            rt.ledger,
            step.pair.name,
            step.record,
            settled(step.change, step.plan, step.known),
            ids,
            step.pair.keep_seconds,
            written={slot(record.connection, name): step.started_ms for name in step.plan.write}
            if result.operation != "unchanged"
            else None,
        )
    if result.operation != "unchanged":
        remember_for_echo(rt, record, result)


def remember_for_echo(rt: WorkerRuntime, record: MappedRecord, result: WriteResult) -> None:
    """A source's echo window (core/echo.py): if a source echoes this connection's writes,
    remember what was written, under both the match value and the target's record id, so the
    echo is recognised."""
    window = echo_window(rt.config, record.connection, record.object)
    if window is None:
        return
    written = {
        name: canonical(value)
        for name, value in record.values().items()
        if name in result.written_fields
    }
    refs = [
        record_ref(record.connection, record.object, canonical(ref))
        for ref in {record.match_value, result.record_id}
        if ref
    ]
    rt.ledger.remember_writes(refs, written, window)
