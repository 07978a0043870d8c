"""Reads that go to both stores: an event is found whether it is still in Redis (hot) or
already in the archive (cold), and each answer says which (`"archived": true|false`).

What `crmhub events list/show` call, and what the operator API's GET /api/v1/events and
/api/v1/events/{id} are to call: `find_event` and `list_events`. Redis is asked first (an
event in both places, between an archive write and its eviction, is the same event: the hot
copy is shown); the hot side is searched by its time indexes and filtered here (it holds
CRMHUB_HOT_RETENTION_SECONDS of events), the archive by its indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.archive.emails import emails_in, normalized_email
from core.archive.store import Archive, EventQuery
from core.ledger import Ledger
from core.ledger.views import iso_from_ms

#: hot events read per round trip while searching
CHUNK = 500
_ROW_FIELDS = ("id", "source", "type", "external_id", "received_at", "state", "deliveries")


def find_event(ledger: Ledger, archive: Archive, event_id: str) -> dict[str, Any] | None:
    """The event as `crmhub events show --json` prints it, with `archived`; None if neither
    store has it. The archive is only asked when Redis does not have it."""
    hot = ledger.event(event_id)
    if hot is not None:
        return hot | {"archived": False}
    cold = archive.event(event_id)
    return None if cold is None else cold | {"archived": True}


def list_events(
    ledger: Ledger, archive: Archive, query: EventQuery, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Events matching `query` from both stores, newest first (received_at, then id): up to
    `limit` rows after the first `offset`, each {id, source, type, external_id, received_at,
    state, deliveries (how many), archived}."""
    want = offset + limit
    rows: dict[str, dict[str, Any]] = {}
    for row in hot_events(ledger, query, want):
        rows[row["id"]] = row
    for row in archive.search(query, limit=want):
        rows.setdefault(row["id"], row | {"archived": True})  # a copy still hot wins
    ordered = sorted(rows.values(), key=lambda r: (r["received_ms"], r["id"]), reverse=True)
    return [
        {k: v for k, v in row.items() if k != "received_ms"}
        for row in ordered[offset : offset + limit]
    ]


def hot_events(ledger: Ledger, query: EventQuery, want: int | None) -> Iterator[dict[str, Any]]:
    """Hot events matching `query`, newest first (at most `want`; None: all), as list rows."""
    found = 0
    position = 0
    fields = (*_ROW_FIELDS, "body") if query.email else _ROW_FIELDS
    email = normalized_email(query.email) if query.email else None
    while want is None or found < want:
        if query.id is not None:
            if position:
                return
            chunk = [(query.id, 0)]
        else:
            chunk = ledger.event_ids_between(
                query.source, query.since, query.until, position, CHUNK
            )
        position += len(chunk)
        raws = ledger.event_fields([i for i, _ in chunk], fields)
        for raw in raws:
            if raw and _matches(ledger, raw, query, email):
                found += 1
                yield _row(raw)
                if want is not None and found >= want:
                    return
        if len(chunk) < CHUNK:
            return


def _matches(ledger: Ledger, raw: dict[str, str], query: EventQuery, email: str | None) -> bool:
    received = int(raw.get("received_at") or 0)
    if (
        (query.id is not None and raw["id"] != query.id)
        or (query.source is not None and raw.get("source") != query.source)
        or (query.type is not None and raw.get("type") != query.type)
        or (query.external_id is not None and raw.get("external_id") != query.external_id)
        or (query.since is not None and received < query.since * 1000)
        or (query.until is not None and received > query.until * 1000)
        or (email is not None and email not in emails_in(raw.get("body", "")))
    ):
        return False
    if query.state is None or raw.get("state") == query.state:
        return True
    ids = [i for i in raw.get("deliveries", "").split(",") if i]
    return any(d.get("state") == query.state for d in ledger.delivery_fields(ids, ("state",)))


def _row(raw: dict[str, str]) -> dict[str, Any]:
    received = int(raw.get("received_at") or 0)
    return {
        "id": raw["id"],
        "source": raw.get("source"),
        "type": raw.get("type") or None,
        "external_id": raw.get("external_id"),
        "received_at": iso_from_ms(received),
        "received_ms": received,
        "state": raw.get("state"),
        "deliveries": len([i for i in raw.get("deliveries", "").split(",") if i]),
        "archived": False,
    }
