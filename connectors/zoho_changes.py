"""Zoho CRM's changed records (a polling source on a zoho connection): the get-records API,
`GET /crm/v8/{module}?fields=..&sort_by=Modified_Time&sort_order=asc&per_page=N&page=P` with
`If-Modified-Since`, paged by `info.more_records` (by page number, and past the 2,000th record
by `page_token`, `info.next_page_token`).

https://www.zoho.com/crm/developer/docs/api/v8/get-records.html: `fields` is required (at most
50), `sort_by` one of id, Created_Time, Modified_Time, `per_page` at most 200, `page` and
`per_page` reach the first 2,000 records, `page_token` the ones after; `If-Modified-Since`
(ISO 8601) keeps the records modified after that time; 204 when no record is left, 304 when
none was modified since. The OpenAPI document: /work/shared/research/data/zoho-crm-v8-record.
openapi.json (GET /crm/v8/{module_api_name}).

Two things Zoho's paging does not promise, and how the hub copes:
- `If-Modified-Since` says "after": the header carries the cursor's second minus one, and the
  rows before the cursor are dropped here, so records sharing the cursor's stamp are not lost.
- A page number is an offset: while the poll pages through more records of one second than a
  page holds (the only time core/polling.py follows Zoho's pages: otherwise every page is asked
  afresh from the newest stamp), a record of that second edited in between moves to a later
  second and shifts the others one place up, so one of them can be skipped. `poll.lookback`
  lists the last seconds again on every poll and catches it (its event id dedupes the rest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.listing import listed, rfc3339_seconds
from core.changes import ChangePage, Stamp
from core.config.polling import PollSpec

if TYPE_CHECKING:
    from connectors.zoho_session import ZohoSession

MAX_PER_PAGE = 200
#: `page` reaches this many records; the rest need `page_token`
PAGE_REACH = 2000
#: `fields` names at most this many
MAX_FIELDS = 50
_TOKEN = "token:"


def list_changes(
    connector: ZohoSession,
    path: str,
    poll: PollSpec,
    since: Stamp,
    cursor: str | None,
    until: Stamp | None,
) -> ChangePage:
    per_page = min(poll.page_size, MAX_PER_PAGE)
    key = poll.id_field or "id"
    params: dict[str, Any] = {
        "fields": ",".join(dict.fromkeys([key, poll.cursor, *poll.fields])),
        "sort_by": poll.cursor,
        "sort_order": "asc",
        "per_page": per_page,
    }
    page = 1
    if cursor and cursor.startswith(_TOKEN):
        params["page_token"] = cursor[len(_TOKEN) :]
    else:
        page = int(cursor or 1)
        params["page"] = page
    headers = {"If-Modified-Since": rfc3339_seconds(since.ms - 1000).replace("Z", "+00:00")}
    response = connector.request("GET", path, params=params, headers=headers, ok=(204, 304))
    if response.status_code in (204, 304):
        return ChangePage([])
    body = response.json()
    records, done = listed(body.get("data") or [], poll, key, since, until)
    info = body.get("info") or {}
    following: str | None = None
    if not done and info.get("more_records"):
        token = info.get("next_page_token")
        if page * per_page >= PAGE_REACH or "page_token" in params:
            following = f"{_TOKEN}{token}" if token else None
        else:
            following = str(page + 1)
    return ChangePage(records, following)


def poll_problems(poll: PollSpec) -> list[tuple[str, str]]:
    problems = []
    if poll.cursor != "Modified_Time":
        problems.append(
            (
                "cursor",
                "Zoho lists changes by `Modified_Time` (If-Modified-Since, sort_by): write "
                "`cursor: Modified_Time`",
            )
        )
    if not poll.fields:
        problems.append(
            (
                "fields",
                "Zoho's get-records API needs the fields to answer: list them in `fields` "
                "(API names, e.g. [Email, Last_Name])",
            )
        )
    elif len({poll.id_field or "id", poll.cursor, *poll.fields}) > MAX_FIELDS:
        problems.append(
            ("fields", f"Zoho answers at most {MAX_FIELDS} fields a request (with id and stamp)")
        )
    return problems
