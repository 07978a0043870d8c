"""What the ledger stores: events, their deliveries, and the delivery states."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Every delivery is in exactly one of these at every moment (DESIGN.md, the ledger)."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SCHEDULED = "scheduled"
    HELD = "held"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


class EventState(StrEnum):
    RECORDED = "recorded"      # has at least one delivery
    UNROUTED = "unrouted"      # matched no mapping; kept for audit
    ECHO = "echo"              # repeats what the hub itself wrote; not routed back


@dataclass(frozen=True)
class NewDelivery:
    id: str
    mapping: str
    connection: str
    object: str
    record_key: str        # writes to one record run one at a time, in arrival order
    occurred_ms: int | None = None   # set when the conflict rule is newest_wins


@dataclass(frozen=True)
class NewEvent:
    id: str
    source: str
    type: str | None
    external_id: str              # the sender's id, or "sha256:<hex>" of the body
    received_at: float            # unix seconds
    occurred_at: str | None
    headers: dict[str, str]
    body: str                     # the event's JSON text exactly as received (or its element)
    deliveries: tuple[NewDelivery, ...] = field(default=())
    #: two-way sync: (record ref, field/value pairs); if the hub wrote exactly these values
    #: within the window, the event is an echo of that write and is not routed
    echo: tuple[str, tuple[tuple[str, str], ...]] | None = None

    @property
    def state(self) -> EventState:
        return EventState.RECORDED if self.deliveries else EventState.UNROUTED


@dataclass(frozen=True)
class RecordResult:
    event_id: str
    deliveries: int
    duplicate: bool
    echo: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.duplicate:
            return {"event_id": self.event_id, "duplicate": True}
        if self.echo:
            return {"event_id": self.event_id, "deliveries": 0, "echo": True}
        return {"event_id": self.event_id, "deliveries": self.deliveries}
