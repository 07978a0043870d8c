"""Two-way sync's decision: which fields of a changed record to write to its twin on the other
CRM, or none (pure: no I/O; workers/two_way.py reads the state and writes).

What a pair knows of a record (core/ledger/agreed.py) is what each side holds, field by field,
in that side's own names and forms, with the stamp of the change that settled it. A change
from side S, mapped to side T's fields, is then looked at twice:

1. against what T is known to hold: a field whose value T holds already is not written (this
   is echo suppression: the hub's own write to T comes back from T's poll as a change whose
   values S holds; and a no-op); a field whose change is older than the one that settled T's
   value is stale (a listing that lagged behind a newer change already synced);
2. if anything is left, against T's record as it is now (read just before the write): a field
   T has changed too since the sides agreed is a conflict, settled by the pair's rule: the
   newest by the records' own modification stamps, or a named side (per field or for all).

Either worker, deciding either direction with the same two stamps, names the same winner, so
concurrent changes on both sides end equal, and a losing change writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config.two_way import NEWEST, Pair
from core.echo import canonical


def slot(side: str, name: str) -> str:
    """How a side's field is named in what the pair knows: `<connection>:<field>`."""
    return f"{side}:{name}"


@dataclass(frozen=True)
class Known:
    """What the pair knows of one record: by slot (`<side>:<field>`), the value the side
    holds (canonical text), and the stamp (epoch ms) and side of the change that settled it."""

    values: Mapping[str, str] = field(default_factory=dict)
    stamps: Mapping[str, int] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    #: when the hub last wrote the slot (epoch ms, the hub's clock, taken before the write)
    written: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """A changed record from `side`, mapped for `target`."""

    side: str
    target: str
    stamp_ms: int
    #: the mapped values, in the target's field names
    values: Mapping[str, Any]
    #: each mapped field's names a pair rule may use (core/config/two_way.field_names)
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the source record's own values of the fields the pair's other mapping writes (what
    #: the source side holds, so that the hub's write coming back is recognised)
    own: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Twin:
    """The target's record as it is now (read before writing): values and its stamp."""

    values: Mapping[str, Any]
    stamp_ms: int | None


@dataclass(frozen=True)
class Plan:
    """What to do with a change, field by field."""

    write: tuple[str, ...] = ()
    held: tuple[str, ...] = ()  # the target holds the value already (echo or no-op)
    stale: tuple[str, ...] = ()  # older than the change that settled the target's value
    lost: tuple[str, ...] = ()  # a conflict the other side won
    #: fields still to compare with the target's record (first_look's answer)
    unsettled: tuple[str, ...] = ()


def first_look(change: Change, known: Known) -> Plan:
    """Compare with what the target is known to hold (no request): held, stale, unsettled."""
    held, stale, unsettled = [], [], []
    for name, value in change.values.items():
        where = slot(change.target, name)
        if known.values.get(where) == canonical(value):
            held.append(name)
        elif _overwritten(change, known, name) or _older(change, known, where):
            stale.append(name)
        else:
            unsettled.append(name)
    return Plan(held=tuple(held), stale=tuple(stale), unsettled=tuple(unsettled))


def settle(change: Change, known: Known, twin: Twin | None, pair: Pair, looked: Plan) -> Plan:
    """Settle first_look's unsettled fields against the target's record as it is now
    (`twin`; None: it has none yet, so every field is written)."""
    write, held, lost = [], list(looked.held), []
    for name in looked.unsettled:
        value = canonical(change.values[name])
        if twin is None:
            write.append(name)
            continue
        now = canonical(twin.values.get(name))
        agreed = known.values.get(slot(change.target, name))
        if now == value:
            held.append(name)
        elif now == agreed or (agreed is None and now == ""):
            write.append(name)  # the target did not change it: the change goes through
        elif wins(change, twin, pair.rule(*change.names.get(name, (name,))), pair):
            write.append(name)
        else:
            lost.append(name)
    return Plan(write=tuple(write), held=tuple(held), stale=looked.stale, lost=tuple(lost))


def wins(change: Change, twin: Twin, rule: str, pair: Pair) -> bool:
    """Does the change win a conflict with the target's own change of the same field?"""
    if rule != NEWEST:
        return rule == change.side
    return _newer(change, twin.stamp_ms or 0, pair.tie_winner())


def _newer(change: Change, theirs: int, tie_winner: str) -> bool:
    if change.stamp_ms != theirs:
        return change.stamp_ms > theirs
    return tie_winner == change.side


def _overwritten(change: Change, known: Known, name: str) -> bool:
    """Does this listing predate the hub's own write of the field on the source side? (The
    source then holds the other side's value; the write's own listing follows, with whatever
    else the source changed.)"""
    names = change.names.get(name, ())
    source_name = names[1] if len(names) > 1 else None
    if source_name is None or source_name not in change.own:
        return False
    where = slot(change.side, source_name)
    if canonical(change.own[source_name]) == known.values.get(where):
        return False
    return change.stamp_ms < known.written.get(where, 0)


def _older(change: Change, known: Known, where: str) -> bool:
    """Was the target's value settled by the other side's change newer than this one? (A
    side's own successive changes are ordered by its listing, whatever their stamps.)"""
    origin = known.origins.get(where)
    if origin is None or origin == change.side or where not in known.stamps:
        return False
    return not _newer(change, known.stamps[where], origin if origin < change.side else change.side)


def settled(change: Change, plan: Plan, known: Known) -> dict[str, tuple[str, int, str]]:
    """What the pair knows after the plan's writes succeed: slot -> (value, stamp, side that
    settled it). The target holds the written and held values; the source holds its own
    values (unless the change lost or lagged: then the other side's newer values stand). A
    value the pair knew already keeps the stamp of the change that settled it (an echo's
    stamp is the hub's write, not a change)."""
    out: dict[str, tuple[str, int, str]] = {}
    held = [(slot(change.target, n), change.values[n]) for n in (*plan.write, *plan.held)]
    own = [] if plan.lost or plan.stale else list(change.own.items())
    for where, value in [*held, *((slot(change.side, n), v) for n, v in own)]:
        text = canonical(value)
        if known.values.get(where) != text:
            out[where] = (text, change.stamp_ms, change.side)
    return out
