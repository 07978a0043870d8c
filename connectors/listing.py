"""What the Pipedrive, Zoho CRM and Dynamics 365 listings share (connectors/*_changes.py): the
stamps they send (each vendor takes RFC 3339, to the second or finer) and the turning of the
vendor's rows into the poller's `Listed` records, within the listing's bounds.

Errors are not handled here: every listing request goes through the connector's `request`,
which classifies the answer once with the vendor's *_errors.py, as for a write (a refused
credential is an AuthError that pauses the connection, a 429 a RateLimited with the vendor's
wait). core/polling.py does the paging, the cursor and the recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from core.changes import Listed, Stamp
from core.config.polling import PollSpec


def rfc3339_seconds(ms: int) -> str:
    """`2025-01-01T10:20:00Z`: the instant floored to its second (a vendor that takes whole
    seconds; flooring lists a little more, never less: the rows before `since` are dropped
    by `listed`)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(ms: int) -> str:
    """`2025-01-01T10:20:00.123Z`: the instant to the millisecond."""
    return Stamp.at(ms).text


def projected(row: dict[str, Any], poll: PollSpec, key: str) -> dict[str, Any]:
    """The row as the event's body: the polled `fields` (and the id and stamp) when the poll
    names them, so a change to a field nobody polls is not a new version; else all of it."""
    if not poll.fields:
        return row
    wanted = dict.fromkeys([key, poll.cursor, *poll.fields])
    return {name: row.get(name) for name in wanted}


def listed(
    rows: Iterable[Any],
    poll: PollSpec,
    key: str,
    since: Stamp,
    until: Stamp | None = None,
) -> tuple[list[Listed], bool]:
    """The rows as `Listed` records, in the vendor's (ascending stamp) order, without the
    ones before `since` (a vendor bound rounded down to the second) or after `until`; and
    whether a row past `until` was seen (the listing is done: the rows are sorted by stamp).
    A row without a parsable stamp is kept: the poller refuses it with a clear error."""
    out: list[Listed] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        text = str(row.get(poll.cursor) or "")
        stamp = Stamp.parse(text)
        if stamp is not None and stamp.ms < since.ms:
            continue
        if stamp is not None and until is not None and stamp.ms > until.ms:
            return out, True
        out.append(Listed(str(row.get(key)), text, projected(row, poll, key)))
    return out, False
