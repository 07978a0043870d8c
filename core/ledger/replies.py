"""The scripts' replies, read by name: one decoder per script, next to what it returns.

Scripts answer with flat arrays (cheap to build and to send); the positions are known here
and in each script's header (its "Reply:" lines), nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.ledger.event_fields import complete as complete_event
from core.ledger.views import decode, text
from core.vocabulary import ClaimStatus


@dataclass(frozen=True)
class Accepted:
    """One event as the accept script took it."""

    event_id: str  # a duplicate's: the first event's id
    deliveries: int
    duplicate: bool
    echo: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.duplicate:
            return {"event_id": self.event_id, "duplicate": True}
        if self.echo:
            return {"event_id": self.event_id, "deliveries": 0, "echo": True}
        return {"event_id": self.event_id, "deliveries": self.deliveries}


def accepted(flat: Sequence[Any]) -> list[Accepted]:
    """accept.lua: 4 per event, {event_id, deliveries, duplicate, echo}; a duplicate's
    event_id as its dedupe key holds it (event_id_of)."""
    return [
        Accepted(
            event_id_of(flat[i]), int(flat[i + 1]), bool(int(flat[i + 2])), bool(int(flat[i + 3]))
        )
        for i in range(0, len(flat), 4)
    ]


def event_id_of(value: Any) -> str:
    """An event id as a dedupe key holds it: ours (`evt_` + 24 hex digits) as its 12 bytes
    (accept.lua dedupe_value), any other as is."""
    if isinstance(value, bytes) and len(value) == 12 and not value.startswith(b"evt_"):
        return "evt_" + value.hex()
    return text(value)


@dataclass(frozen=True)
class Claim:
    """What `claim` decided: claimed (now ours), or why not."""

    status: ClaimStatus
    attempts: int = 0
    wait_ms: int = 0
    due_ms: int = 0
    reason: str = ""  # skip: the state or Reason; deferred: the Reason
    #: with_data: the delivery as the claim left it, and (when claimed) its event
    delivery: Mapping[str, str] = field(default_factory=dict)
    event: Mapping[str, str] = field(default_factory=dict)


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    """A flat HGETALL reply from a script ([field, value, ...]) as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _delivery_and_event(
    delivery: Sequence[Any], event: Sequence[Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """A claimed delivery and its event (flat HGETALL replies), decoded."""
    raw = decode(_pairs(delivery))
    return raw, complete_event(raw.get("event_id", ""), decode(_pairs(event)))


def claim(reply: Sequence[Any], *, with_data: bool) -> Claim:
    """claim.lua: claim_one's answer (claim_one.lua lists them), wrapped as {answer, delivery,
    event} when with_data."""
    delivery: dict[str, str] = {}
    event: dict[str, str] = {}
    if with_data:
        reply, raw_delivery, raw_event = reply
        delivery, event = _delivery_and_event(raw_delivery, raw_event)
    out = [text(x) for x in reply]
    status = ClaimStatus(out[0])
    if status == ClaimStatus.CLAIMED:
        return Claim(status, attempts=int(out[1]), delivery=delivery, event=event)
    if status == ClaimStatus.WAIT:
        return Claim(status, wait_ms=int(float(out[1])), delivery=delivery, event=event)
    if status == ClaimStatus.DEFERRED:
        return Claim(
            status, due_ms=int(float(out[1])), reason=out[2], delivery=delivery, event=event
        )
    return Claim(status, reason=out[1] if len(out) > 1 else "", delivery=delivery, event=event)


def next_claimed(reply: Sequence[Any]) -> Claim:
    """claim_next.lua: {claimed, attempts, delivery, event} (flat HGETALL arrays), {wait, ms},
    or {skip, Reason} when the drain stops."""
    status = ClaimStatus(text(reply[0]))
    if status == ClaimStatus.CLAIMED:
        delivery, event = _delivery_and_event(reply[2], reply[3])
        return Claim(status, attempts=int(reply[1]), delivery=delivery, event=event)
    if status == ClaimStatus.WAIT:
        return Claim(status, wait_ms=int(float(reply[1])))
    return Claim(status, reason=text(reply[1]))


@dataclass(frozen=True)
class BatchClaimed:
    delivery_id: str
    attempts: int


def batch_claimed(flat: Sequence[Any]) -> list[BatchClaimed]:
    """claim_batch.lua: 2 per delivery claimed, {delivery_id, attempts}."""
    return [BatchClaimed(text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


@dataclass(frozen=True)
class Finish:
    lost: bool  # the lease had expired and someone else owns it now
    newly_paused: bool = False


def finished(reply: Sequence[Any]) -> Finish:
    """finish.lua: {'lost'} or {'ok', newly_paused}."""
    if text(reply[0]) == "lost":
        return Finish(lost=True)
    return Finish(lost=False, newly_paused=bool(int(reply[1])))


@dataclass(frozen=True)
class Swept:
    due: int  # SCHEDULED deliveries due, now pending again
    expired: int  # IN_FLIGHT deliveries whose lease ran out, now pending again
    republished: int  # PENDING deliveries whose message was lost, published again

    def most(self) -> int:
        return max(self.due, self.expired, self.republished)


def swept(reply: Sequence[Any]) -> Swept:
    """sweep.lua: {due, expired, republished}."""
    due, expired, republished = reply
    return Swept(int(due), int(expired), int(republished))


def replayed(items: Sequence[str], reply: Sequence[Any]) -> dict[str, str]:
    """replay.lua: per item, in order, 'ok' or what prevented the action."""
    return {item: text(result) for item, result in zip(items, reply, strict=True)}


@dataclass(frozen=True)
class Permit:
    """permit.lua: whether a read may go out now, and if not, until when or why."""

    status: ClaimStatus  # claimed (go) | held (paused) | deferred | wait
    until_ms: int = 0  # deferred: when to ask again
    reason: str = ""  # deferred: cooldown, circuit_open, circuit_probe
    wait_ms: float = 0.0  # wait: the rate limit's


def permit(reply: Sequence[Any]) -> Permit:
    status = ClaimStatus(text(reply[0]))
    if status == ClaimStatus.DEFERRED:
        return Permit(status, until_ms=int(float(reply[1])), reason=text(reply[2]))
    if status == ClaimStatus.WAIT:
        return Permit(status, wait_ms=float(reply[1]))
    return Permit(status)


def read_outcome(reply: Sequence[Any]) -> bool:
    """read_outcome.lua: {newly_paused}."""
    return bool(int(reply[0]))
