"""The hub's vocabulary, named once: the words the ledger stores and the scripts compare.

Every value here is data on disk (a delivery's `state`, a dead letter's `dead_category`, the
fields of the `stats:*` counters) or part of the contract (CLI output, metrics labels), so a
value never changes; a member's name may. The ledger's Lua scripts write these words as
`<Enum>.<value>` (`State.pending`, `AttemptOutcome.retry`), which core/ledger/scripts.py
replaces with the quoted value when it assembles a script: a misspelt word fails as the
script loads, never at run time, and costs nothing per call. tests/unit/test_ledger_contract.py
checks that no script spells one of these words as a bare literal instead.

Imports nothing of ours: core.errors and the connectors use DeadCategory.
"""

from __future__ import annotations

from enum import StrEnum

#: who pauses a connection when no operator did (a refused credential): the name in a pause's
#: `by`, which operator token names may not take (core/operator_tokens.py)
HUB_ITSELF = "crmhub"


class State(StrEnum):
    """Every delivery is in exactly one of these at every moment (docs/architecture.md, the
    ledger)."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SCHEDULED = "scheduled"
    HELD = "held"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


class EventState(StrEnum):
    """An accepted event's state. "recorded" is the stored word (and what `crmhub events show`
    prints), kept from before the ledger's operation was called "accept"."""

    RECORDED = "recorded"  # has at least one delivery
    UNROUTED = "unrouted"  # matched no mapping; kept for audit
    ECHO = "echo"  # repeats what the hub itself wrote; not routed back


class AttemptOutcome(StrEnum):
    """What an attempt's outcome makes of its delivery (workers/policy.py decides, the finish
    script applies it); also an attempt history entry's `outcome` and the `stats:attempts`
    counters' second half."""

    DELIVERED = "delivered"
    SUPERSEDED = "superseded"  # older than what the record already has (newest_wins)
    DEAD = "dead"
    RETRY = "retry"  # scheduled again after a backoff
    DEFERRED = "deferred"  # 429: scheduled after the cooldown, no attempt used
    HELD = "held"  # the target refused the credentials: the connection pauses
    #: written into the history by the sweeper when a worker's lease ran out (never finished)
    LEASE_EXPIRED = "lease_expired"


class ClaimStatus(StrEnum):
    """What the claim scripts decided about a delivery."""

    CLAIMED = "claimed"  # now IN_FLIGHT, leased to the caller
    SKIP = "skip"  # not pending, or not its record's turn (a stale message)
    HELD = "held"  # the connection is paused: now HELD
    SUPERSEDED = "superseded"  # older than what was already applied to the record
    DEFERRED = "deferred"  # cooldown, circuit open, long rate wait: now SCHEDULED
    WAIT = "wait"  # rate limit: try again in a moment (state unchanged)


class Reason(StrEnum):
    """Why a script did not do what it was asked (beside a state that prevented it)."""

    MISSING = "missing"  # no such delivery
    WAITING = "waiting"  # not its record's turn yet
    COOLDOWN = "cooldown"  # the target answered 429
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_PROBE = "circuit_probe"  # half open: another delivery is the probe
    RATE_LIMIT = "rate_limit"
    CHANGED = "changed"  # an operator's action: the dead letter died again since it was chosen
    PAUSED = "paused"  # the drain (claim_next.lua): the connection is paused
    NONE_READY = "none_ready"  # the drain: no delivery of the connection is waiting its turn


class CircuitState(StrEnum):
    """A connection's circuit breaker (no breaker hash at all reads as closed)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class DeadCategory(StrEnum):
    """Why a delivery is a dead letter (`crmhub dlq list --category`)."""

    VALIDATION = "validation"  # the mapped record breaks a target field spec
    MAPPING = "mapping"  # the event cannot be mapped (or its mapping left)
    REJECTED_BY_TARGET = "rejected_by_target"  # the target refused the data
    RETRIES_EXHAUSTED = "retries_exhausted"  # failed transiently until the give-up age
    AMBIGUOUS_MATCH = "ambiguous_match"  # several target records match the key: never a guess
    SOURCE_RECORD_MISSING = "source_record_missing"  # the record to fetch is gone (404)


class OperatorAction(StrEnum):
    """What an operator does, as noted in a delivery's `actions` and in the action log."""

    REPLAY = "replay"
    DISCARD = "discard"
    EDIT = "edit"  # edit-and-replay: the edited event kept beside the original
    PAUSE = "pause"
    RESUME = "resume"
    PURGE = "purge"  # erase a person's events from both stores (`crmhub events purge`)


class WebhookOutcome(StrEnum):
    """The `stats:webhooks` counters' outcomes (crmhub_webhooks): the accept script counts
    the first three, the receiver the rest."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    ECHO = "echo"
    UNAUTHORIZED = "unauthorized"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"


#: the enumerations the ledger's scripts may name (`<Enum>.<value>`), by name
SCRIPT_WORDS: dict[str, type[StrEnum]] = {
    enum.__name__: enum
    for enum in (
        State,
        EventState,
        AttemptOutcome,
        ClaimStatus,
        Reason,
        CircuitState,
        DeadCategory,
        OperatorAction,
        WebhookOutcome,
    )
}
