"""Events and dead letters as the operator API and dashboard show them: each event with its
deliveries and every attempt (time, duration, outcome, status, response excerpt) as a
timeline, and nothing secret in any of it.

Signature headers are already replaced when an event is stored (core/intake.py); every view
here redacts again, by name, whatever looks like a credential (a stored event from before a
source's scheme changed, a header a sender adds), and scrubs token-like values from the
targets' response excerpts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.archive.store import Archive, EventQuery
from core.errors import BadCursor
from core.intake import ALWAYS_REDACTED, REDACTED
from core.ledger import Ledger
from core.ledger.pages import Cursor, Page
from core.ledger.views import iso_from_ms
from core.signatures.registry import SCHEMES
from core.vocabulary import State

#: every header a known scheme signs with
SIGNATURE_HEADERS = frozenset(
    h.lower()
    for scheme in SCHEMES.values()
    for h in getattr(scheme, "signature_headers", ())
    if isinstance(h, str)
)
SECRET_HEADER = re.compile(r"signature|secret|token|auth|api[-_]?key|cookie|password", re.I)
SECRET_VALUE = re.compile(
    r"""(["']?(?:access_token|refresh_token|id_token|client_secret|password|api_key|secret|"""
    r"""authorization)["']?\s*[:=]\s*)(["'][^"']*["']|[^\s,&}]+)""",
    re.I,
)
BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
DELIVERY_STATES = frozenset(s.value for s in State)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: REDACTED
        if name.lower() in ALWAYS_REDACTED
        or name.lower() in SIGNATURE_HEADERS
        or SECRET_HEADER.search(name)
        else value
        for name, value in headers.items()
    }


def scrub(text: Any) -> Any:
    """A response excerpt or error text without token-like values."""
    if not isinstance(text, str):
        return text
    return BEARER.sub(r"\1 [redacted]", SECRET_VALUE.sub(r"\1[redacted]", text))


def attempt_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    at = entry.get("at")
    return {
        "at": iso_from_ms(int(float(at) * 1000)) if isinstance(at, (int, float)) else at,
        "duration_ms": entry.get("duration_ms"),
        "outcome": entry.get("outcome"),
        "status": entry.get("status"),
        "error": scrub(entry.get("error")),
        "excerpt": scrub(entry.get("excerpt")),
        **({"problems": entry["problems"]} if entry.get("problems") else {}),
    }


def action_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    at = entry.get("at")
    return dict(entry) | {
        "at": iso_from_ms(int(float(at) * 1000)) if isinstance(at, (int, float)) else at
    }


def delivery_detail(ledger: Ledger, delivery_id: str) -> dict[str, Any] | None:
    """A delivery with its attempt timeline and operator actions (`dlq show --json`)."""
    view = ledger.delivery(delivery_id, history=True)
    if view is None:
        return None
    raw = ledger.raw_delivery(delivery_id)
    view["attempt_history"] = [attempt_view(a) for a in view["attempt_history"]]
    view["actions"] = [action_view(a) for a in view["actions"]]
    view["original_event_id"] = raw.get("original_event_id") or None
    if view.get("dead"):
        view["dead"]["error"] = scrub(view["dead"]["error"])
    return view


def event_detail(
    ledger: Ledger, event_id: str, archive: Archive | None = None
) -> dict[str, Any] | None:
    """The event (headers redacted), its deliveries and every attempt of each; from Redis,
    else from the archive when one is given (`archived` says which)."""
    raw = ledger.raw_event(event_id)
    if not raw:
        return None if archive is None else _archived_detail(archive, event_id)
    event = ledger.event(event_id)
    assert event is not None
    deliveries = [
        d
        for d in (delivery_detail(ledger, i) for i in raw.get("deliveries", "").split(",") if i)
        if d is not None
    ]
    return event | {
        "headers": redact_headers(event["headers"]),
        "deliveries": deliveries,
        "edit_of": raw.get("edit_of") or None,
        "archived": False,
    }


def _archived_detail(archive: Archive, event_id: str) -> dict[str, Any] | None:
    event = archive.event(event_id)
    if event is None:
        return None
    for delivery in event["deliveries"]:
        delivery["attempt_history"] = [attempt_view(a) for a in delivery["attempt_history"]]
        delivery["actions"] = [action_view(a) for a in delivery["actions"]]
        if delivery.get("dead"):
            delivery["dead"]["error"] = scrub(delivery["dead"]["error"])
    return event | {
        "headers": redact_headers(event["headers"]),
        "edit_of": None,
        "archived": True,
    }


def dead_letter_detail(ledger: Ledger, delivery_id: str) -> dict[str, Any] | None:
    """As `crmhub dlq show --json`: the delivery, and its event."""
    view = delivery_detail(ledger, delivery_id)
    if view is None:
        return None
    event = ledger.event(view["event_id"])
    if event is not None:
        event = {k: v for k, v in event.items() if k != "deliveries"} | {
            "headers": redact_headers(event["headers"])
        }
    return view | {"event": event}


def event_row(raw: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "source": raw.get("source"),
        "type": raw.get("type") or None,
        "external_id": raw.get("external_id"),
        "received_at": iso_from_ms(raw.get("received_at")),
        "state": raw.get("state"),
        "deliveries": len([i for i in raw.get("deliveries", "").split(",") if i]),
        "archived": False,
    }


#: a page of archived events is asked for by this cursor prefix and its offset
ARCHIVED_CURSOR = "archived:"


def events_page(
    ledger: Ledger,
    *,
    source: str | None = None,
    type: str | None = None,
    state: str | None = None,
    q: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
    archive: Archive | None = None,
) -> dict[str, Any]:
    """Events newest first: Redis's (the hot ones, paged in the ledger), then, when an
    archive is given, the archive's (paged there by offset: `next_cursor` "archived:N")."""
    query = _archive_query(source, type, state, q, since_ms, until_ms)
    if cursor and cursor.startswith(ARCHIVED_CURSOR):
        if archive is None:
            raise BadCursor(f"cursor {cursor[:40]!r} is not one a page gave out")
        return _archived_page(archive, query, limit, _offset(cursor))
    found: Page = ledger.event_page(
        source=source,
        type=type,
        state=state,
        q=q,
        since_ms=since_ms,
        until_ms=until_ms,
        limit=limit,
        cursor=Cursor.parse(cursor),
        delivery_states=DELIVERY_STATES,
    )
    following = found.next_cursor
    if following is None and archive is not None and archive.search(query, limit=1):
        following = f"{ARCHIVED_CURSOR}0"  # the hot events are done: the archive's next
    return {"events": [event_row(r) for r in found.rows], "next_cursor": following}


def _offset(cursor: str) -> int:
    raw = cursor[len(ARCHIVED_CURSOR) :]
    if not raw.isdigit() or len(raw) > 12:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one a page gave out")
    return int(raw)


def _archive_query(
    source: str | None,
    type: str | None,
    state: str | None,
    q: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> EventQuery:
    """The list's filters as the archive's query; `q` as the hot search reads it: an event
    id, an email address, else a sender's event id."""
    term = (q or "").strip() or None
    is_id = bool(term and term.startswith("evt_"))
    is_email = bool(term and "@" in term)
    return EventQuery(
        id=term if is_id else None,
        email=term if is_email and not is_id else None,
        external_id=term if term and not (is_id or is_email) else None,
        source=source,
        type=type,
        state=state,
        since=None if since_ms is None else since_ms / 1000,
        until=None if until_ms is None else until_ms / 1000,
    )


def _archived_page(archive: Archive, query: EventQuery, limit: int, offset: int) -> dict[str, Any]:
    rows = archive.search(query, limit=limit + 1, offset=offset)
    return {
        "events": [
            {k: v for k, v in row.items() if k != "received_ms"} | {"archived": True}
            for row in rows[:limit]
        ],
        "next_cursor": f"{ARCHIVED_CURSOR}{offset + limit}" if len(rows) > limit else None,
    }
