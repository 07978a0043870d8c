"""A changed record as an event: its identity, its stamp and its type (pure: no I/O).

A polling source (`sources.<s>.poll`) lists records changed since a cursor; each becomes an
event whose body is the record. Its event id is the record's id, its modification stamp and a
short hash of the record's polled fields: the same change seen twice (a poll repeating the
cursor's stamp, a webhook on a source that also polls, a backfill over live changes) is one
event, while two changes of one record within one stamp (a second's precision) are two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.config.polling import PollSpec
from core.instants import instant_ms

#: hex digits of the record's hash in its event id: enough that two changes within one stamp
#: never collide in practice, short enough to read
HASH_CHARS = 12


@dataclass(frozen=True)
class Stamp:
    """A modification stamp: the text the vendor gave (sent back to it as the cursor) and the
    instant it names (how stamps are compared: vendors spell one instant several ways)."""

    text: str
    ms: int

    @classmethod
    def parse(cls, text: str) -> Stamp | None:
        ms = instant_ms(text)
        return cls(text, ms) if ms is not None else None

    @classmethod
    def at(cls, ms: int) -> Stamp:
        """An instant as ISO 8601 UTC with milliseconds (a new source's start: now)."""
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return cls(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z", ms)


@dataclass(frozen=True)
class Listed:
    """One changed record as a connector lists it: its id, its stamp as the vendor wrote it,
    and the record (the event's body: mapping paths read its fields)."""

    id: str
    stamp: str
    record: dict[str, Any]


@dataclass(frozen=True)
class ChangePage:
    """A page of a listing, in (stamp, id) order, and the vendor's cursor for the page after
    it (None: the listing from that stamp is done)."""

    records: list[Listed]
    next_cursor: str | None = None
    #: every record the vendor listed, when `records` is a part of them (core/polling.py
    #: leaves out the ones it listed already); None: `records` is all of them
    all_listed: list[Listed] | None = None

    @property
    def listed(self) -> list[Listed]:
        return self.records if self.all_listed is None else self.all_listed


def stamp_of(listed: Listed) -> Stamp | None:
    return Stamp.parse(listed.stamp)


def change_id(record_key: str, stamp: Stamp, record: Any) -> str:
    """`<record id>@<stamp ms>#<hash>`: the stamp as an instant, so one change spelt two ways
    (a webhook's ISO text, a listing's) is one id."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{record_key}@{stamp.ms}#{digest}"


def event_type(poll: PollSpec) -> str:
    return f"{poll.object}.changed"
