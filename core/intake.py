"""Turn a verified webhook request into the events to accept (pure: no I/O).

A source's body is one JSON object (the event), or with `batch: true` a JSON array whose
elements are each an object and their own event (HubSpot). Each event gets the sender's id for
deduplication (a dotted path or a header, as the source's `event_id` says); an event without
that id is refused, never accepted under a made-up one. A source with no `event_id` falls back
to a hash of the event's JSON text, so a retried delivery is recognised even from senders that
send no id.

What the ledger keeps apart from the body (ids, types, instants, echo values) is escaped where
UTF-8 cannot encode it (a lone surrogate: JSON's `"\ud800"`), so such an event is still
accepted; the body is kept as sent, and mapping it dead-letters the delivery naming the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.changes import Listed, Stamp, change_id, stamp_of
from core.changes import event_type as change_type
from core.config.model import MappingConfig, SourceConfig
from core.echo import inbound
from core.errors import CrmhubError
from core.ids import new_delivery_id, new_event_id
from core.instants import instant_ms
from core.ledger.deliveries import folded_id
from core.ledger.model import NewDelivery, NewEvent
from core.mapping import record_key
from core.routing import route
from core.splitting import NothingToSplit, split_body
from core.text import escaped

#: never stored with an event, whatever the scheme
ALWAYS_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
REDACTED = "[redacted]"
#: the deepest nesting of arrays and objects a body may have. Webhooks nest a handful of levels
#: (Stripe's deepest is about 6); a body nested thousands deep is an attack on the parser (and
#: on everything that walks the event afterwards), refused before json.loads sees it.
MAX_JSON_DEPTH = 64
# what decides nesting: quotes (strings hide brackets) and the brackets themselves
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


class BadPayload(CrmhubError, ValueError):
    """The body is not what the source promises; `detail` says what and where."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def nesting_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in `body` nest deeper than `limit` (brackets inside strings
    do not count). It runs on every body before json.loads, so all of it is C-level byte
    work: a body with no more brackets than the limit cannot nest deeper (two counts);
    otherwise escapes and everything but quotes and brackets are dropped, then the strings,
    and each pass removes the innermost pairs, one level per pass."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # escaped backslashes first, so that in `\\"` the quote still ends its string
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    # quotes alternate open, close: dropping two adjacent ones keeps that (and drops the many
    # strings with no brackets in them at C speed), the regex takes the few that are left
    quoted = unescaped.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", quoted)
    if not brackets:  # every bracket was inside a string
        return False
    for _ in range(limit):
        reduced = _INNERMOST_PAIR.sub(b"", brackets)
        if not reduced or reduced == brackets:  # all matched, or unbalanced: json.loads says
            return False
        brackets = reduced
    return True


def decode_body(body: bytes) -> tuple[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"body is not UTF-8: invalid byte at offset {exc.start}") from None
    if nesting_too_deep(body):
        raise BadPayload(
            f"body nests arrays and objects more than {MAX_JSON_DEPTH} levels "
            f"deep; the hub accepts at most {MAX_JSON_DEPTH}"
        )
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # the scan above should make this unreachable; never a 500
        raise BadPayload(
            f"body nests arrays and objects more than {MAX_JSON_DEPTH} levels "
            f"deep; the hub accepts at most {MAX_JSON_DEPTH}"
        ) from None


def stored_headers(headers: Iterable[tuple[str, str]], redact: Iterable[str]) -> dict[str, str]:
    hidden = ALWAYS_REDACTED | {h.lower() for h in redact}
    return {name: (REDACTED if name.lower() in hidden else value) for name, value in headers}


def newest_wins(source: SourceConfig, mapping: MappingConfig) -> bool:
    """The conflict rule: newest_wins by default when the source has `occurred_at`."""
    # a polling source's events carry their records' stamps as when they occurred
    stamped = source.occurred_at is not None or source.poll is not None
    rule = mapping.conflict or ("newest_wins" if stamped else "source_wins")
    return rule == "newest_wins"


def _external_id(
    source: SourceConfig, item: Any, item_text: str, headers: Mapping[str, str], index: int | None
) -> str:
    """The sender's id for dedupe. A source that names where its id is must send it: hashing
    the body instead would record a retry whose body differs (a new timestamp) as a new event."""
    if source.event_id is None and source.poll is not None:
        changed = webhook_change_id(source, item)
        if changed is not None:  # the record a poll of this source would list: one event
            return changed
    if source.event_id is None:
        return "sha256:" + hashlib.sha256(item_text.encode()).hexdigest()
    external = source.event_id.resolve_text(item, headers)
    if not external:
        where = (
            f"header {source.event_id.header}"
            if source.event_id.header is not None
            else f"`{source.event_id}`"
        )
        event = (
            "the event"
            if index is None
            else f"element {index} of the batch"
            if source.batch
            else f"event {index} of the split"
        )
        raise BadPayload(
            f"{event} has no id at {where} (the source's event_id); the hub "
            "deduplicates on it, so an event without it is refused"
        )
    if index is not None and source.event_id.reads_header:
        external = f"{external}#{index}"  # one header id for a whole batch
    return external


def build_events(
    source: SourceConfig,
    mappings: Iterable[MappingConfig],
    headers: Mapping[str, str],
    stored: dict[str, str],
    text: str,
    body: Any,
    now: float,
) -> list[NewEvent]:
    """One NewEvent per event in the body, each with a delivery per matching mapping."""
    items: list[tuple[str, Any, int | None]]
    if source.batch:
        if not isinstance(body, list) or not body:
            raise BadPayload(
                "source is configured with batch: true, so the body must be a "
                f"non-empty JSON array of events; it is {json_type(body)}"
                + (" (empty)" if body == [] else "")
            )
        for position, element in enumerate(body):
            if not isinstance(element, dict):
                raise BadPayload(
                    f"element {position} of the batch is {json_type(element)}; "
                    "each event must be a JSON object"
                )
        items = [
            (json.dumps(element, separators=(",", ":"), sort_keys=True), element, position)
            for position, element in enumerate(body)
        ]
    else:
        if not isinstance(body, dict):
            raise BadPayload(f"body is {json_type(body)}; an event must be a JSON object")
        items = [(text, body, None)]
        if source.split:
            try:
                pieces = split_body(body, source.split)
            except NothingToSplit as exc:
                raise BadPayload(exc.detail) from None
            items = [
                (json.dumps(piece, separators=(",", ":"), ensure_ascii=False), piece, position)
                for position, piece in enumerate(pieces)
            ]
    candidates = tuple(mappings)
    events = []
    for item_text, item, index in items:
        external = escaped(_external_id(source, item, item_text, headers, index))
        event_type = source.event_type.resolve_text(item, headers) if source.event_type else None
        occurred = source.occurred_at.resolve_text(item, headers) if source.occurred_at else None
        events.append(
            _new_event(
                source, candidates, external, event_type, occurred, stored, item_text, item, now
            )
        )
    return events


def webhook_change_id(source: SourceConfig, item: Any) -> str | None:
    """A webhook to a source that also polls, whose body is the changed record itself (its id
    at the poll's `id_field`, else `Id` or `id`; its stamp at the poll's `cursor`): the change
    id a poll listing the same record would give it, so the two are one event."""
    poll = source.poll
    if poll is None or not isinstance(item, dict):
        return None
    ident = next(
        (item.get(k) for k in (poll.id_field, "Id", "id") if k and item.get(k) not in (None, "")),
        None,
    )
    stamp = Stamp.parse(str(item.get(poll.cursor))) if item.get(poll.cursor) else None
    if ident is None or isinstance(ident, (dict, list)) or stamp is None:
        return None
    return change_id(str(ident), stamp, item)


def change_events(
    source: SourceConfig, mappings: Iterable[MappingConfig], listed: Iterable[Listed], now: float
) -> list[NewEvent]:
    """One NewEvent per changed record a polling source listed (core/polling.py): the record
    is the body, `<object>.changed` the type, its stamp when it occurred (so `newest_wins`
    compares the records' own modification stamps), and its id the change's (core/changes.py),
    so the same change listed twice is deduplicated by the ledger like a webhook's repeat."""
    assert source.poll is not None
    candidates = tuple(mappings)
    kind = change_type(source.poll)
    events = []
    for item in listed:
        stamp = stamp_of(item)
        if stamp is None:
            raise BadPayload(
                f"{source.poll.object} {item.id} has no modification stamp a time can be read "
                f"from at `{source.poll.cursor}`: {item.stamp!r}"
            )
        text = json.dumps(item.record, separators=(",", ":"), sort_keys=True, default=str)
        external = escaped(change_id(item.id, stamp, item.record))
        events.append(
            _new_event(source, candidates, external, kind, stamp.text, {}, text, item.record, now)
        )
    return events


def _new_event(
    source: SourceConfig,
    candidates: tuple[MappingConfig, ...],
    external: str,
    event_type: str | None,
    occurred: str | None,
    stored: dict[str, str],
    item_text: str,
    item: Any,
    now: float,
) -> NewEvent:
    occurred_ms = instant_ms(occurred)
    event_id = new_event_id(now)
    deliveries: list[NewDelivery] = []
    for mapping in route(candidates, event_type, item):
        # the first is held in its event's hash (core/ledger/deliveries.py): one key, not two
        delivery_id = (not deliveries and folded_id(event_id)) or new_delivery_id(now)
        deliveries.append(
            NewDelivery(
                id=delivery_id,
                mapping=mapping.name,
                connection=mapping.connection,
                object=mapping.object,
                record_key=record_key(mapping, item, delivery_id),
                occurred_ms=occurred_ms if newest_wins(source, mapping) else None,
            )
        )
    echo = inbound(source.echo, item) if source.echo else None
    # what the ledger stores apart from the body must be text UTF-8 can encode
    return NewEvent(
        id=event_id,
        source=source.name,
        type=escaped(event_type) if event_type else event_type,
        external_id=external,
        received_at=now,
        occurred_at=escaped(occurred) if occurred else occurred,
        headers=stored,
        body=item_text,
        deliveries=tuple(deliveries),
        echo=_escaped_echo(echo) if echo else None,
    )


def _escaped_echo(
    echo: tuple[str, tuple[tuple[str, str], ...]],
) -> tuple[str, tuple[tuple[str, str], ...]]:
    ref, pairs = echo
    return escaped(ref), tuple((escaped(name), escaped(value)) for name, value in pairs)
