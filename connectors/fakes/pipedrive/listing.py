"""The fake Pipedrive's list endpoint, `GET /api/v2/{persons|organizations}`, over its records:
what a polling source pages.

The v2 OpenAPI document (spec/pipedrive-v2.json, getPersons / getOrganizations):
`updated_since` keeps records "with an update_time later than or equal to this time",
`updated_until` those "earlier than this time" (RFC 3339); `sort_by` id, update_time or
add_time (default id), `sort_direction` asc or desc (default asc); `limit` default 100, "a
maximum value of 500 is allowed"; `cursor` "the marker (an opaque string value) representing
the first item on the next page", answered as `additional_data.next_cursor` (null on the last
page). The fake's cursor is that marker: the next item's sort value and id, so a record that
changes while a client pages moves in the order without shifting the others (what an offset
would do). Records are stamped to the second (state.stamp), so many share one `update_time`;
ties are in id order [unconfirmed: the document does not say].
https://developers.pipedrive.com/docs/api/v1/Persons#getPersons
"""

from __future__ import annotations

import base64
import json
from typing import Any

from connectors.fakes.app import Request, Response
from connectors.fakes.pipedrive import texts
from connectors.fakes.pipedrive.records import Refused
from connectors.fakes.pipedrive.state import State

Json = dict[str, Any]
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def list_page(state: State, obj: str, req: Request) -> Response:
    """One page of `obj`'s records (called under the state's lock, after the parameter check
    against the document)."""
    limit = int(req.param("limit") or DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise Refused(
            Response(400, texts.validation("limit", f"must be between 1 and {MAX_LIMIT}")),
            "limit out of range",
        )
    since, until = req.param("updated_since"), req.param("updated_until")
    field = req.param("sort_by") or "id"
    descending = req.param("sort_direction") == "desc"
    rows = [
        r
        for r in state.records[obj].values()
        if (since is None or _instant(r["update_time"]) >= _instant(since))
        and (until is None or _instant(r["update_time"]) < _instant(until))
    ]
    rows.sort(key=lambda r: _order(r, field), reverse=descending)
    marker = _marker(req.param("cursor"))
    if marker is not None:
        rows = [
            r
            for r in rows
            if (_order(r, field) <= marker if descending else _order(r, field) >= marker)
        ]
    page, rest = rows[:limit], rows[limit:]
    following = _cursor(_order(rest[0], field)) if rest else None
    return Response(
        200,
        {
            "success": True,
            "data": [dict(r) for r in page],
            "additional_data": {"next_cursor": following},
        },
    )


def _instant(text: str) -> str:
    """RFC 3339 UTC to the second compares as text once the fraction and zone are cut."""
    return text.replace("Z", "")[:19]


def _order(record: Json, field: str) -> tuple[Any, int]:
    value = record.get(field)
    return (
        _instant(value) if field != "id" and isinstance(value, str) else value or 0,
        record["id"],
    )


def _cursor(order: tuple[Any, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(order)).encode()).decode()


def _marker(cursor: str | None) -> tuple[Any, int] | None:
    if not cursor:
        return None
    try:
        value, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise Refused(
            Response(400, texts.validation("cursor", "is not a valid cursor")), "bad cursor"
        ) from None
    return value, int(record_id)
