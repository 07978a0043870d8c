"""The fake Dataverse's changed-rows query: `GET /api/data/v9.2/{set}?$select=..&$filter=
modifiedon ge T [and modifiedon le T]&$orderby=modifiedon asc,{key} asc` with `Prefer:
odata.maxpagesize=N`, paged by `@odata.nextLink`: what a polling source pages.

https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results:
`Prefer: odata.maxpagesize` (at most 5,000; answered with `Preference-Applied`), the next page
is `@odata.nextLink`, a whole URL with a `$skiptoken` paging cookie that holds the last row of
the page (`<cookie pagenumber="2" pagingcookie="...<contactid last="{...}" first=...>"`);
no `$skip`. https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/
filter-rows: comparison operators eq, ne, gt, ge, lt, le, joined by `and`; a date-time
literal is unquoted ISO 8601. https://learn.microsoft.com/power-apps/developer/data-platform/
webapi/query/order-rows: `$orderby` columns with asc or desc.

The cookie here is the last row's sort values and id, so a row that changes while a client
pages moves in the order without shifting the others. Rows are stamped to the second
(state._stamp), so many share one `modifiedon`.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any
from urllib.parse import urlencode

from connectors.fakes.app import Response
from connectors.fakes.dynamics.schema import EntitySet
from connectors.fakes.dynamics.texts import bad_syntax, unknown_property
from core.instants import instant_ms

MAX_PAGE = 5000
_RANGE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s+(gt|ge|lt|le)\s+(\d{4}-\d\d-\d\dT[0-9:.]+Z)\s*$")
_ORDER = re.compile(r"^\s*([a-z_][a-z0-9_]*)(?:\s+(asc|desc))?\s*$")
_TESTS = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def is_range(text: str) -> bool:
    """Whether a `$filter` is date-time comparisons joined by `and` (this module's), not the
    key lookups records.py answers."""
    return bool(text) and all(_RANGE.match(part) for part in text.split(" and "))


def query_page(
    rows: list[dict[str, Any]],
    entity: EntitySet,
    query: dict[str, list[str]],
    headers: dict[str, str],
    url: str,
    shown: Any,
) -> Response:
    """A page of the rows the `$filter` keeps, in `$orderby` order; `shown(row)` is the row
    as the answer carries it."""
    for part in (query.get("$filter") or [""])[-1].split(" and "):
        match = _RANGE.match(part)
        if match is None:
            raise bad_syntax(f"$filter={part[:200]}")
        column, op, literal = match.groups()
        if column not in entity.columns:
            raise unknown_property(column, entity.entity)
        bound = instant_ms(literal)
        rows = [r for r in rows if _TESTS[op](instant_ms(r.get(column)) or 0, bound)]
    order: list[tuple[str, bool]] = []
    for part in ",".join(query.get("$orderby") or []).split(","):
        if not part.strip():
            continue
        match = _ORDER.match(part)
        if match is None:
            raise bad_syntax(f"$orderby={part[:200]}")
        if match.group(1) not in entity.columns and match.group(1) != entity.key:
            raise unknown_property(match.group(1), entity.entity)
        order.append((match.group(1), match.group(2) == "desc"))
    if not any(column == entity.key for column, _ in order):
        order.append((entity.key, False))  # the paging cookie's own tie-break

    def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
        values: list[Any] = []
        for column, descending in order:
            value = row.get(column)
            value = instant_ms(value) if column.endswith("on") else str(value or "")
            values.append(_Reversed(value) if descending else value)
        return tuple(values)

    rows = sorted(rows, key=sort_key)
    cookie = (query.get("$skiptoken") or [""])[-1]
    if cookie:
        last = tuple(
            _Reversed(v) if descending else v
            for v, (_, descending) in zip(_last(cookie), order, strict=False)
        )
        rows = [r for r in rows if last < sort_key(r)]
    size = _page_size(headers)
    page, rest = rows[:size], rows[size:]
    body: dict[str, Any] = {"value": [shown(r) for r in page]}
    answer_headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if size < MAX_PAGE else {}
    if rest:
        params = {k: v[-1] for k, v in query.items() if k != "$skiptoken"}
        params["$skiptoken"] = _cookie(_key_list(sort_key(page[-1])))
        body["@odata.nextLink"] = f"{url}?{urlencode(params)}"
    return Response(200, body, answer_headers)


@functools.total_ordering
class _Reversed:
    """A value that sorts backwards (a `desc` column in an ascending sort key)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.value == other.value)

    def __lt__(self, other: _Reversed) -> bool:
        return bool(self.value > other.value)

    __hash__ = None  # type: ignore[assignment]


def _key_list(key: tuple[Any, ...]) -> list[Any]:
    return [k.value if isinstance(k, _Reversed) else k for k in key]


def _page_size(headers: dict[str, str]) -> int:
    for preference in headers.get("prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        if name == "odata.maxpagesize" and value.strip().isdigit():
            return max(1, min(int(value), MAX_PAGE))
    return MAX_PAGE


def _cookie(values: list[Any]) -> str:
    inner = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
    return f'<cookie pagenumber="2" pagingcookie="{inner}" istracking="False" />'


def _last(cookie: str) -> list[Any]:
    match = re.search(r'pagingcookie="([^"]*)"', cookie)
    try:
        return list(
            json.loads(base64.urlsafe_b64decode((match.group(1) if match else "").encode()))
        )
    except ValueError:
        raise bad_syntax("$skiptoken is not a paging cookie this query gave") from None
