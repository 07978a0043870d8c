"""Operator actions on the ledger: what the CLI's commands do (and what an HTTP operator
surface would call).

Every action that changes a delivery is recorded on it (who, when, why).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.config import Config
from core.ledger import Ledger
from core.ledger.dead_pages import DEAD_FIELDS
from core.ledger.views import iso_from_ms
from core.mapping import record_key
from core.vocabulary import CircuitState, DeadCategory, OperatorAction, Reason, State

STATE_NAMES = [s.value for s in State]


def connection_status(ledger: Ledger, config: Config) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(config.connections):
        state = ledger.connection_state(name)
        pause = state["pause"] or {}
        last = state["last"]
        breaker = state["breaker"]
        rows.append(
            {
                "name": name,
                "connector": config.connections[name].connector,
                "paused": bool(state["pause"]),
                "pause_reason": pause.get("reason"),
                "paused_since": iso_from_ms(int(pause["since"] * 1000)) if pause else None,
                "paused_by": pause.get("by"),
                "pause_detail": pause.get("detail") or None,
                "counts": {s: max(0, state["counts"].get(s, 0)) for s in STATE_NAMES},
                "last_success_at": iso_from_ms(last.get("success_at")),
                "last_failure_at": iso_from_ms(last.get("failure_at")),
                "last_failure": last.get("failure") or None,
                "circuit": breaker.get("state", CircuitState.CLOSED.value),
                "cooldown_until": iso_from_ms(state["cooldown_until_ms"]),
            }
        )
    return rows


def polling_status(ledger: Ledger, config: Config) -> list[dict[str, Any]]:
    """Each polling source: its connection and object, its cursor (the newest stamp recorded,
    and the vendor's page cursor inside it), when it last polled and succeeded, its last
    error, how many records it listed, when it polls next."""
    rows = []
    for name in sorted(config.sources):
        poll = config.sources[name].poll
        if poll is None:
            continue
        seen = ledger.polls.status(name)
        rows.append(
            {
                "name": name,
                "connection": poll.connection,
                "object": poll.object,
                "every_seconds": poll.every,
                "cursor": seen.cursor.stamp.text if seen.cursor else None,
                "cursor_page": seen.cursor.after if seen.cursor else None,
                "last_poll_at": _iso(seen.polled_at),
                "last_ok_at": _iso(seen.ok_at),
                "last_error": seen.error or None,
                "last_error_at": _iso(seen.error_at) if seen.error else None,
                "records_listed": seen.listed,
                "next_poll_at": _iso(seen.next_at),
            }
        )
    return rows


def _iso(seconds: float | None) -> str | None:
    return iso_from_ms(int(seconds * 1000)) if seconds is not None else None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters an operator means (`dlq list`, `replay --all`, `discard --all`)."""

    connection: str | None = None
    category: DeadCategory | None = None
    since: float | None = None  # dead at or after (epoch seconds)

    def matches(self, raw: dict[str, str]) -> bool:
        return (
            raw.get("state") == State.DEAD
            and (not self.connection or raw.get("connection") == self.connection)
            and (not self.category or raw.get("dead_category") == self.category)
        )


#: what a dead letter's row shows (not its record, which can be large)
ROW_FIELDS = DEAD_FIELDS
CHUNK = 500


def dead_letter_row(raw: Mapping[str, str]) -> dict[str, Any]:
    """A dead letter as a list shows it (CLI, API, dashboard)."""
    return {
        "id": raw["id"],
        "event_id": raw.get("event_id"),
        "connection": raw.get("connection"),
        "mapping": raw.get("mapping"),
        "category": raw.get("dead_category"),
        "error": raw.get("dead_error"),
        "dead_at": iso_from_ms(raw.get("dead_at")),
        "attempts": int(raw.get("attempts", 0)),
    }


def _matching(ledger: Ledger, which: DeadLetterFilter) -> Iterator[dict[str, str]]:
    """Every dead letter `which` matches, newest first (read in pipelined chunks)."""
    ids = ledger.dead_ids(limit=None, since=which.since)
    for start in range(0, len(ids), CHUNK):
        for raw in ledger.delivery_fields(ids[start : start + CHUNK], ROW_FIELDS):
            if raw and which.matches(raw):
                yield raw


def dead_letter_page(
    ledger: Ledger, which: DeadLetterFilter, *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Dead letters newest first: up to `limit` rows after the first `offset` that match,
    and how many match in all (so a truncated list can say so)."""
    if not which.connection and not which.category:  # the index alone answers
        ids = ledger.dead_ids(limit=limit, since=which.since, offset=offset)
        rows = [
            dead_letter_row(raw)
            for raw in ledger.delivery_fields(ids, ROW_FIELDS)
            if raw and which.matches(raw)
        ]
        return rows, ledger.dead_count(which.since)
    rows = []
    total = 0
    for raw in _matching(ledger, which):
        if offset <= total < offset + limit:
            rows.append(dead_letter_row(raw))
        total += 1
    return rows, total


def dead_letter_ids(ledger: Ledger, which: DeadLetterFilter) -> list[str]:
    """Every dead letter `which` matches (for `--all`: no cap)."""
    return [raw["id"] for raw in _matching(ledger, which)]


def record_keys(ledger: Ledger, config: Config, ids: Sequence[str]) -> dict[str, str]:
    """Each delivery's record key as its current mapping computes it from its event (in two
    round trips); a missing delivery is left out, one whose mapping left or whose body does not
    parse keeps its old key (the mapping reports the problem when it runs)."""
    deliveries = dict(
        zip(
            ids,
            ledger.delivery_fields(ids, ("connection", "mapping", "rk", "event_id")),
            strict=True,
        )
    )
    present = {i: raw for i, raw in deliveries.items() if raw}
    events = ledger.raw_events([raw.get("event_id", "") for raw in present.values()])
    keys: dict[str, str] = {}
    for (delivery_id, raw), event in zip(present.items(), events, strict=True):
        rk = raw.get("rk") or f"{raw.get('connection')}:#{delivery_id}"
        mapping = config.mappings.get(raw.get("mapping", ""))
        if mapping is not None:
            with contextlib.suppress(ValueError):
                rk = record_key(mapping, json.loads(event.get("body", "null")), delivery_id)
        keys[delivery_id] = rk
    return keys


def replay(
    ledger: Ledger,
    config: Config,
    ids: Sequence[str],
    *,
    by: str,
    now: float,
    via: str = "cli",
    dead_at: Mapping[str, str] | None = None,
    operation: str | None = None,
) -> dict[str, str]:
    """Re-run DEAD deliveries with the current mapping (their record key recomputed).
    `dead_at`: as the operator saw each; one that died again since is left alone."""
    keys = record_keys(ledger, config, ids)
    # a missing delivery goes to the script too, which reports it (and counts it as taken)
    items = [
        (i, keys.get(i, ""), *((dead_at[i],) if dead_at and dead_at.get(i) else ())) for i in ids
    ]
    if not items:
        return {}
    return ledger.dead_letter_action(
        OperatorAction.REPLAY, items, now=now, by=by, via=via, operation=operation
    )


def discard(
    ledger: Ledger,
    ids: Iterable[str],
    *,
    reason: str,
    by: str,
    now: float,
    via: str = "cli",
    dead_at: Mapping[str, str] | None = None,
    operation: str | None = None,
) -> dict[str, str]:
    items = [(i, "", *((dead_at[i],) if dead_at and dead_at.get(i) else ())) for i in ids]
    return ledger.dead_letter_action(
        OperatorAction.DISCARD,
        items,
        now=now,
        by=by,
        reason=reason,
        via=via,
        operation=operation,
    )


#: a replayed delivery in these states is still on its way (waiting its turn, or being sent)
UNDER_WAY = (State.PENDING, State.IN_FLIGHT)


def outcome(ledger: Ledger, ids: Sequence[str]) -> dict[str, Any]:
    """Where the given deliveries stand: a count per state (pending and in_flight together as
    `pending`), and the reasons of those that are dead, most common first."""
    counts: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for start in range(0, len(ids), CHUNK):
        for raw in ledger.delivery_fields(
            ids[start : start + CHUNK], ("state", "dead_category", "dead_error")
        ):
            state = raw.get("state", Reason.MISSING)
            counts[State.PENDING if state in UNDER_WAY else state] += 1
            if state == State.DEAD:
                reasons[(raw.get("dead_category", ""), raw.get("dead_error", ""))] += 1
    return {
        "counts": {state: counts.get(state, 0) for state in OUTCOME_STATES}
        | {state: n for state, n in counts.items() if state not in OUTCOME_STATES},
        "dead_reasons": [
            {"category": category, "error": error, "count": n}
            for (category, error), n in reasons.most_common()
        ],
    }


OUTCOME_STATES = (
    State.DELIVERED,
    State.DEAD,
    State.PENDING,
    State.SCHEDULED,
    State.HELD,
    State.SUPERSEDED,
)


def await_outcome(
    ledger: Ledger,
    ids: Sequence[str],
    *,
    timeout: float,
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The deliveries' outcome once none is still on its way, or when `timeout` runs out;
    with `waited_seconds` and `settled` (False: some were still pending at the deadline)."""
    began = clock()
    while True:
        result = outcome(ledger, ids)
        settled = result["counts"][State.PENDING] == 0
        if settled or clock() - began >= timeout:
            return result | {"settled": settled, "waited_seconds": round(clock() - began, 1)}
        sleep(min(poll, max(0.0, timeout - (clock() - began))))
