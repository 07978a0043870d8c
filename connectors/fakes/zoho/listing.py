"""The fake Zoho's record list, `GET /crm/v8/{module}` without `ids`: what a polling source
pages, over the fake's records.

https://www.zoho.com/crm/developer/docs/api/v8/get-records.html: `fields` required (at most
50); `sort_by` one of id, Created_Time, Modified_Time (default id), `sort_order` asc or desc
(default desc); `per_page` at most 200 (default 200); `page` (default 1) reaches the first
2,000 records, past them `page_token` (the answer's `info.next_page_token`) or the error
DISCRETE_PAGINATION_LIMIT_EXCEEDED; `If-Modified-Since` (ISO 8601) keeps the records modified
after that time; 204 when the page is empty, 304 when no record was modified since
(https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html). `info`: per_page, count,
page, sort_by, sort_order, more_records, next_page_token, previous_page_token,
page_token_expiry. The OpenAPI document (openapi.py) declares these parameters.

Pages are offsets into the sorted records, as page numbers are: a record that changes while a
client pages moves to the end and shifts the rest one place (what the hub's `poll.lookback`
is for). Records are stamped to the second (state.stamp), so many share one Modified_Time;
ties are in id order [unconfirmed: Zoho does not say].
"""

from __future__ import annotations

import base64
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.zoho import texts
from connectors.fakes.zoho.texts import ZohoError
from core.instants import instant_ms

PER_PAGE = 200
MAX_FIELDS = 50
PAGE_REACH = 2000
SORTABLE = ("id", "Created_Time", "Modified_Time")


def sorted_page(rows: list[Json], req: Request) -> tuple[list[Json], Json] | Response:
    """The page of `rows` the request asks for, and its `info`; or the 204/304 answer."""
    if len(req.param_list("fields") or []) > MAX_FIELDS:
        raise texts.record_limit(MAX_FIELDS)
    field = req.param("sort_by") or "id"
    if field not in SORTABLE:
        raise ZohoError(400, "INVALID_DATA", "invalid data", {"param_name": "sort_by"})
    order = req.param("sort_order") or "desc"
    since = req.headers.get("if-modified-since")
    if since is not None:
        bound = instant_ms(since)
        if bound is None:
            raise ZohoError(400, "INVALID_DATA", "invalid data", {"header": "If-Modified-Since"})
        rows = [r for r in rows if (instant_ms(r.get("Modified_Time")) or 0) > bound]
        if not rows:
            return Response(304)
    rows = sorted(rows, key=lambda r: (_sort_value(r, field), int(r["id"])))
    if order == "desc":
        rows.reverse()
    per_page = min(int(req.param("per_page") or PER_PAGE), PER_PAGE)
    token = req.param("page_token")
    if token is not None:
        start = _offset(token)
        page = start // per_page + 1
    else:
        page = int(req.param("page") or 1)
        start = (page - 1) * per_page
        if start + per_page > PAGE_REACH:
            raise ZohoError(
                400,
                "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                "you cannot fetch more than 2000 records using page param. "
                "Please use page_token param",
                {},
            )
    shown = rows[start : start + per_page]
    if not shown:
        return Response(204)
    more = start + per_page < len(rows)
    info = {
        "per_page": per_page,
        "count": len(shown),
        "page": page,
        "sort_by": field,
        "sort_order": order,
        "more_records": more,
        "next_page_token": _token(start + per_page) if more else None,
        "previous_page_token": _token(max(start - per_page, 0)) if start else None,
        "page_token_expiry": None if not more else "2099-01-01T00:00:00+00:00",
    }
    return shown, info


def _sort_value(row: Json, field: str) -> Any:
    if field == "id":
        return int(row["id"])
    return instant_ms(row.get(field)) or 0


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except ValueError:
        pass
    raise ZohoError(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
