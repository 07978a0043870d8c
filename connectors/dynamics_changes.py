"""Dataverse's changed rows (a polling source on a dynamics connection): the Web API query,
`GET /api/data/v9.2/{entity set}?$select=..&$filter=modifiedon ge T&$orderby=modifiedon asc,
{primary key} asc` with `Prefer: odata.maxpagesize=N`, paged by `@odata.nextLink`.

https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results:
`Prefer: odata.maxpagesize` up to 5,000; the next page is the answer's `@odata.nextLink`, a
whole URL sent back as it is (with the same Prefer header); no `$skip`. Ordering by the primary
key after `modifiedon` makes the order total, so the paging cookie pages rows of one stamp
without repeats (https://learn.microsoft.com/power-apps/developer/data-platform/fetchxml/
page-results: "ordering plays an important part in getting consistent paging results").
https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows:
`ge`/`le` on a date-time column takes an unquoted ISO 8601 literal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.listing import listed, rfc3339_ms
from core.changes import ChangePage, Stamp
from core.config.polling import PollSpec

if TYPE_CHECKING:
    from connectors.dynamics_session import DynamicsSession

MAX_PAGE = 5000


def list_changes(
    connector: DynamicsSession,
    path: str,
    primary_key: str,
    poll: PollSpec,
    since: Stamp,
    cursor: str | None,
    until: Stamp | None,
) -> ChangePage:
    key = poll.id_field or primary_key
    # the OData version headers are the session's own (dynamics_session.ODATA_HEADERS)
    headers = {"Prefer": f"odata.maxpagesize={min(poll.page_size, MAX_PAGE)}"}
    if cursor:
        response = connector.request("GET", cursor, headers=headers)
    else:
        where = f"{poll.cursor} ge {rfc3339_ms(since.ms)}"
        if until is not None:
            where += f" and {poll.cursor} le {rfc3339_ms(until.ms)}"
        params = {
            "$select": ",".join(dict.fromkeys([key, poll.cursor, *poll.fields])),
            "$filter": where,
            "$orderby": f"{poll.cursor} asc,{key} asc",
        }
        response = connector.request("GET", path, params=params, headers=headers)
    body = response.json()
    records, _ = listed(body.get("value") or [], poll, key, since, until)
    following = body.get("@odata.nextLink")
    return ChangePage(records, str(following) if following else None)
