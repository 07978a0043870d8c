"""``POST /crm/v3/objects/{object}/search``: filter groups, free-text query, sorts, paging."""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.hubspot.checks import Checks, int_param
from connectors.fakes.hubspot.properties import ObjectType
from connectors.fakes.hubspot.schemas import scalar_text
from connectors.fakes.hubspot.texts import hs_error

#: the most results one search query pages through
RESULT_LIMIT = 10_000


class Search(Checks):
    def _op_search(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        """[SPEC PublicObjectSearchRequest; search guide: filterGroups are ORed, filters within a
        group ANDed, limit up to 200, paging.next.after; EQ on a string is case-insensitive.]"""
        body = self._body(req, "PublicObjectSearchRequest")
        groups: list[Json] = list(body.get("filterGroups") or [])
        limit = int_param(
            scalar_text(body.get("limit")) if body.get("limit") is not None else None, 10
        )
        limit = max(1, min(limit, 200))
        offset = int_param(
            scalar_text(body.get("after")) if body.get("after") is not None else None, 0
        )
        if offset + limit > RESULT_LIMIT:
            # "The search endpoints are limited to 10,000 total results for any given query.
            # Attempting to page past 10,000 will result in a 400 error."
            # https://developers.hubspot.com/docs/api/crm/search#limitations
            return Response(
                400,
                hs_error(
                    f"Search results are limited to {RESULT_LIMIT} total results; page past "
                    "them with a narrower filter",
                    category="VALIDATION_ERROR",
                ),
            )
        query = str(body.get("query") or "").strip().lower()
        requested = body.get("properties")
        sorts = body.get("sorts") or []
        with self.state.lock:
            table = self.state.records[otype.name]
            matches = [
                rec
                for rec in table.values()
                if (not groups or any(group_matches(g, rec["properties"]) for g in groups))
                and (
                    not query
                    or any(query in rec["properties"].get(p, "").lower() for p in otype.searchable)
                )
            ]
            key_prop, descending = sort_spec(sorts)
            if key_prop is None:
                matches.sort(key=lambda r: int(r["id"]))
            else:
                matches.sort(
                    key=lambda r: sort_key(r["properties"].get(key_prop)), reverse=descending
                )
            page = matches[offset : offset + limit]
            results = [
                self.state.render(otype, rec, [str(p) for p in requested] if requested else None)
                for rec in page
            ]
        out: Json = {"total": len(matches), "results": results}
        if offset + limit < len(matches):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, out)


def _filter_matches(flt: Json, props: dict[str, str]) -> bool:
    name = str(flt.get("propertyName", ""))
    operator = str(flt.get("operator", "EQ"))
    actual = props.get(name)
    have = actual is not None and actual != ""
    if operator == "HAS_PROPERTY":
        return have
    if operator == "NOT_HAS_PROPERTY":
        return not have
    value = scalar_text(flt.get("value")).lower()
    text = (actual or "").lower()
    if operator == "EQ":
        return have and text == value
    if operator == "NEQ":
        return text != value
    if operator in ("IN", "NOT_IN"):
        values = {scalar_text(v).lower() for v in flt.get("values") or []}
        return (have and text in values) if operator == "IN" else text not in values
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = have and value.strip("*") in text
        return found if operator == "CONTAINS_TOKEN" else not found
    if not have:
        return False
    left, right = sort_key(actual), sort_key(scalar_text(flt.get("value")))
    if operator == "GT":
        return left > right
    if operator == "GTE":
        return left >= right
    if operator == "LT":
        return left < right
    if operator == "LTE":
        return left <= right
    if operator == "BETWEEN":
        high = sort_key(scalar_text(flt.get("highValue")))
        return right <= left <= high
    return False


def group_matches(group: Json, props: dict[str, str]) -> bool:
    return all(_filter_matches(f, props) for f in group.get("filters") or [])


def sort_key(value: str | None) -> tuple[int, float, str]:
    """Numbers compare as numbers, and so do datetimes: a datetime property (stored as
    ``2019-10-30T03:30:17.883Z``) is filtered and sorted as epoch milliseconds, the form the
    search guide's examples send as filter values."""
    if value is None or value == "":
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        pass
    if len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            return (0, dt.datetime.fromisoformat(value).timestamp() * 1000, "")
        except ValueError:
            pass
    return (1, 0.0, value.lower())


def sort_spec(sorts: list[Any]) -> tuple[str | None, bool]:
    if not sorts:
        return None, False
    first = sorts[0]
    if isinstance(first, dict):
        return str(first.get("propertyName")), str(
            first.get("direction", "ASCENDING")
        ) == "DESCENDING"
    text = str(first)
    if text.startswith("-"):
        return text[1:], True
    return text, False
