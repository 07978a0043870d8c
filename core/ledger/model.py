"""What the ledger is given to store: new events and their deliveries (the words they are
stored with: core/vocabulary.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.vocabulary import EventState


@dataclass(frozen=True)
class NewDelivery:
    id: str
    mapping: str
    connection: str
    object: str
    record_key: str  # writes to one record run one at a time, in arrival order
    occurred_ms: int | None = None  # set when the conflict rule is newest_wins


@dataclass(frozen=True)
class NewEvent:
    id: str
    source: str
    type: str | None
    external_id: str  # the sender's id, or "sha256:<hex>" of the body
    received_at: float  # unix seconds
    occurred_at: str | None
    headers: dict[str, str]
    body: str  # the event's JSON text exactly as received (or its element)
    deliveries: tuple[NewDelivery, ...] = field(default=())
    #: two-way sync: (record ref, field/value pairs); if the hub wrote exactly these values
    #: within the window, the event is an echo of that write and is not routed
    echo: tuple[str, tuple[tuple[str, str], ...]] | None = None

    @property
    def state(self) -> EventState:
        return EventState.RECORDED if self.deliveries else EventState.UNROUTED
