"""`sources.<s>.poll`: a source that lists changed records from a connection on a schedule
instead of (or as well as) receiving webhooks. Its shape (marshmallow) and its model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.config.durations import Duration
from core.config.fields import PathList

#: the most records one listing request may ask for (Salesforce's query batches go to 2,000)
MAX_PAGE_SIZE = 2000
#: the shortest `every`: a poll is at least one request to the vendor
MIN_EVERY_SECONDS = 1.0
#: the longest `lookback`: every poll lists the window again, so it stays short
MAX_LOOKBACK_SECONDS = 3600.0


@dataclass(frozen=True)
class ListSpec:
    """How the generic `http` connector lists changes: `GET {base_url}/{object}?{since_param}=
    {cursor stamp}&{limit_param}={page_size}`, the records at `items` of the answer, then the
    next page by `next` (a cursor in the answer, sent back as `next_param`) or by page number
    (`page_param`, from 1)."""

    since_param: str
    items: tuple[str, ...] = ()  # () : the answer is the list itself
    next: tuple[str, ...] = ()
    next_param: str | None = None
    page_param: str | None = None
    limit_param: str | None = None


@dataclass(frozen=True)
class PollSpec:
    connection: str
    object: str
    every: float  # seconds between the end of one poll and the start of the next
    cursor: str  # the record's modification stamp field (SystemModstamp, hs_lastmodifieddate)
    fields: tuple[str, ...] = ()  # () : what the connector returns by default
    page_size: int = 100
    id_field: str = ""  # "" : the connector's (Salesforce `Id`, HubSpot the object id, `id`)
    list: ListSpec | None = None  # the http connector's listing
    #: seconds before the cursor each poll lists again (0: off), for a vendor whose paging can
    #: skip a record that moves while the poll pages (Zoho's page numbers); the event ids
    #: dedupe what was recorded already
    lookback: float = 0.0


class ListSchema(Schema):
    since_param = fields.String(required=True)
    items = PathList()
    next = PathList()
    next_param = fields.String()
    page_param = fields.String()
    limit_param = fields.String()

    @validates_schema
    def _one_way_to_page(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "next" in data and "page_param" in data:
            raise ValidationError(
                "page by a next cursor (`next` and `next_param`) or by page number "
                "(`page_param`), not both"
            )
        if ("next" in data) != ("next_param" in data):
            raise ValidationError(
                "`next` (where the answer holds the next page's cursor) and `next_param` "
                "(the query parameter that sends it back) go together",
                "next_param" if "next" in data else "next",
            )


class PollSchema(Schema):
    connection = fields.String(required=True)
    object = fields.String(required=True)
    every = Duration(required=True)
    cursor = fields.String(
        required=True,
        validate=validate.Length(min=1, error="name the record's modification stamp field"),
    )
    fields_ = fields.List(
        fields.String(validate=validate.Length(min=1)),
        data_key="fields",
        validate=validate.Length(min=1, error="list at least one field (or leave `fields` out)"),
    )
    page_size = fields.Integer(
        load_default=100,
        validate=validate.Range(
            min=1, max=MAX_PAGE_SIZE, error=f"a page is 1 to {MAX_PAGE_SIZE} records"
        ),
    )
    id_field = fields.String(validate=validate.Length(min=1))
    list = fields.Nested(ListSchema)
    lookback = Duration(
        validate=validate.Range(
            min=1,
            max=MAX_LOOKBACK_SECONDS,
            error="lookback is 1s to 1h (each poll lists that window again)",
        )
    )

    @validates_schema
    def _every_is_sane(self, data: dict[str, Any], **kwargs: Any) -> None:
        every = data.get("every")
        if isinstance(every, float) and every < MIN_EVERY_SECONDS:
            raise ValidationError("poll at most once a second (every: 1s or more)", "every")


def build_poll(spec: dict[str, Any]) -> PollSpec:
    listing = spec.get("list")
    return PollSpec(
        connection=spec["connection"],
        object=spec["object"],
        every=spec["every"],
        cursor=spec["cursor"],
        fields=tuple(spec.get("fields_") or ()),
        page_size=spec["page_size"],
        id_field=spec.get("id_field", ""),
        lookback=spec.get("lookback", 0.0),
        list=ListSpec(
            since_param=listing["since_param"],
            items=listing.get("items", ()),
            next=listing.get("next", ()),
            next_param=listing.get("next_param"),
            page_param=listing.get("page_param"),
            limit_param=listing.get("limit_param"),
        )
        if listing
        else None,
    )


def poll_problems(
    sources: Mapping[str, Any], connections: Mapping[str, Any], listing: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """(key, problem) for each polling source that cannot run as written: a connector that
    cannot list changes, an `http` listing without `list:`, `list:` on another connector, a
    page larger than the vendor's. `listing`: connector name -> its class (the registry), whose
    `lists_changes` and `max_list_page` say what it can do; None skips those checks."""
    problems: list[tuple[str, str]] = []
    for name, source in sources.items():
        poll = source.poll
        if poll is None or poll.connection not in connections:
            continue  # no poll, or a reference problem reported elsewhere
        where = f"sources.{name}.poll"
        connector = connections[poll.connection].connector
        cls = listing.get(connector) if listing is not None else None
        if listing is not None and cls is not None and not getattr(cls, "lists_changes", False):
            able = sorted(n for n, c in listing.items() if getattr(c, "lists_changes", False))
            problems.append(
                (
                    f"{where}.connection",
                    f"connection {poll.connection!r} uses the {connector} connector, which cannot "
                    f"list changed records; poll a connection whose connector can "
                    f"({', '.join(able)})",
                )
            )
            continue
        if connector == "http" and poll.list is None:
            problems.append(
                (
                    f"{where}.list",
                    "an http connection lists changes as its API says: give `list:` with at "
                    "least `since_param` (the query parameter the cursor stamp goes in)",
                )
            )
        if connector != "http" and poll.list is not None:
            problems.append(
                (f"{where}.list", f"`list:` applies to http connections, not {connector}")
            )
        most = int(getattr(cls, "max_list_page", MAX_PAGE_SIZE)) if cls else MAX_PAGE_SIZE
        if poll.page_size > most:
            problems.append(
                (f"{where}.page_size", f"the {connector} connector lists at most {most} a page")
            )
        own = getattr(cls, "poll_problems", None) if cls else None
        if own is not None:  # the connector's own rules (its vendor's list API)
            problems += [(f"{where}.{key}", message) for key, message in own(poll)]
    return problems
