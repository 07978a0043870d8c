"""Pipedrive's changed records (a polling source on a pipedrive connection): the v2 list
endpoint, `GET /api/v2/{object}?updated_since=T&sort_by=update_time&sort_direction=asc&
limit=N[&cursor=C]`, paged by `additional_data.next_cursor`.

The v2 OpenAPI document (connectors/fakes/pipedrive/spec; /api/v2/persons GET): `updated_since`
keeps records "with an update_time later than or equal to this time" (inclusive: the cursor's
own second is listed again and the ledger deduplicates it), `updated_until` those "earlier
than this time" (exclusive), RFC 3339 to the second; `sort_by` one of id, update_time,
add_time; `limit` at most 500; `cursor` "the marker (an opaque string value) representing the
first item on the next page". `custom_fields` names at most 15 custom field keys to include.
https://developers.pipedrive.com/docs/api/v1/Persons#getPersons (v2 tab)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors import pipedrive_errors as pd
from connectors.listing import listed, rfc3339_seconds
from core.changes import ChangePage, Stamp
from core.config.polling import PollSpec

if TYPE_CHECKING:
    from connectors.pipedrive import PipedriveConnector

#: the v2 list endpoints answer at most 500 records a request
MAX_LIMIT = 500
#: `custom_fields` names at most this many keys
MAX_CUSTOM_FIELDS = 15


def list_changes(
    connector: PipedriveConnector,
    poll: PollSpec,
    since: Stamp,
    cursor: str | None,
    until: Stamp | None,
    custom: list[str],
) -> ChangePage:
    params: dict[str, Any] = {
        "updated_since": rfc3339_seconds(since.ms),
        "sort_by": "update_time",
        "sort_direction": "asc",
        "limit": min(poll.page_size, MAX_LIMIT),
    }
    if until is not None:  # exclusive, to the second: the second after `until`'s own
        params["updated_until"] = rfc3339_seconds(until.ms + 1000)
    if custom:
        params["custom_fields"] = ",".join(custom[:MAX_CUSTOM_FIELDS])
    if cursor:
        params["cursor"] = cursor
    body = pd.envelope(connector.request("GET", f"/api/v2/{poll.object}", params=params))
    rows = body.get("data") or []
    records, done = listed(rows, poll, poll.id_field or "id", since, until)
    following = (body.get("additional_data") or {}).get("next_cursor")
    return ChangePage(records, None if done or not following else str(following))


def poll_problems(poll: PollSpec, custom: list[str]) -> list[tuple[str, str]]:
    problems = []
    if poll.cursor != "update_time":
        problems.append(
            (
                "cursor",
                "Pipedrive lists changes by `update_time` (updated_since, sort_by): "
                "write `cursor: update_time`",
            )
        )
    if len(custom) > MAX_CUSTOM_FIELDS:
        problems.append(
            (
                "fields",
                f"Pipedrive's list includes at most {MAX_CUSTOM_FIELDS} custom fields "
                f"(`custom_fields`); {len(custom)} are listed: poll fewer",
            )
        )
    return problems
