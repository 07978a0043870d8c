"""Turn a verified webhook request into the events to record (pure: no I/O).

A source's body is one JSON event, or with `batch: true` a JSON array whose elements are each
their own event (HubSpot). Each event gets the sender's id for deduplication (a dotted path or
a header), falling back to a hash of its JSON text, so a retried delivery is recognised even
from senders that send no id.

What the ledger keeps apart from the body (ids, types, instants, echo values) is escaped where
UTF-8 cannot encode it (a lone surrogate: JSON's `"\ud800"`), so such an event is still
recorded; the body is kept as sent, and mapping it dead-letters the delivery naming the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from core.config.model import MappingConfig, SourceConfig
from core.echo import inbound
from core.ids import new_delivery_id, new_event_id
from core.instants import instant_ms
from core.ledger.model import NewDelivery, NewEvent
from core.mapping import record_key
from core.routing import route
from core.text import escaped

#: never stored with an event, whatever the scheme
ALWAYS_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
REDACTED = "[redacted]"


class BadPayload(ValueError):
    """The body is not what the source promises; `detail` says what and where."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def decode_body(body: bytes) -> tuple[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"body is not UTF-8: invalid byte at offset {exc.start}") from None
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None


def stored_headers(headers: Iterable[tuple[str, str]],
                   redact: Iterable[str]) -> dict[str, str]:
    hidden = ALWAYS_REDACTED | {h.lower() for h in redact}
    return {name: (REDACTED if name.lower() in hidden else value) for name, value in headers}


def newest_wins(source: SourceConfig, mapping: MappingConfig) -> bool:
    """The conflict rule: newest_wins by default when the source has `occurred_at`."""
    rule = mapping.conflict or ("newest_wins" if source.occurred_at else "source_wins")
    return rule == "newest_wins"


def build_events(source: SourceConfig, mappings: Iterable[MappingConfig],
                 headers: Mapping[str, str], stored: dict[str, str], text: str, body: Any,
                 now: float) -> list[NewEvent]:
    """One NewEvent per event in the body, each with a delivery per matching mapping."""
    items: list[tuple[str, Any, int | None]]
    if source.batch:
        if not isinstance(body, list) or not body:
            raise BadPayload("source is configured with batch: true, so the body must be a "
                             "non-empty JSON array of events")
        items = [(json.dumps(item, separators=(",", ":"), sort_keys=True), item, index)
                 for index, item in enumerate(body)]
    else:
        items = [(text, body, None)]
    candidates = tuple(mappings)
    events = []
    for item_text, item, index in items:
        external = source.event_id.resolve_text(item, headers) if source.event_id else None
        if external is not None and index is not None and source.event_id \
                and source.event_id.header is not None:
            external = f"{external}#{index}"     # one header id for a whole batch
        if not external:
            external = "sha256:" + hashlib.sha256(item_text.encode()).hexdigest()
        external = escaped(external)
        event_type = source.event_type.resolve_text(item, headers) \
            if source.event_type else None
        occurred = source.occurred_at.resolve_text(item, headers) \
            if source.occurred_at else None
        occurred_ms = instant_ms(occurred)
        event_id = new_event_id(now)
        deliveries = []
        for mapping in route(candidates, event_type, item):
            delivery_id = new_delivery_id(now)
            deliveries.append(NewDelivery(
                id=delivery_id, mapping=mapping.name, connection=mapping.connection,
                object=mapping.object, record_key=record_key(mapping, item, delivery_id),
                occurred_ms=occurred_ms if newest_wins(source, mapping) else None))
        echo = inbound(source.echo, item) if source.echo else None
        # what the ledger stores apart from the body must be text UTF-8 can encode
        events.append(NewEvent(id=event_id, source=source.name,
                               type=escaped(event_type) if event_type else event_type,
                               external_id=external, received_at=now,
                               occurred_at=escaped(occurred) if occurred else occurred,
                               headers=stored, body=item_text,
                               deliveries=tuple(deliveries),
                               echo=_escaped_echo(echo) if echo else None))
    return events


def _escaped_echo(echo: tuple[str, tuple[tuple[str, str], ...]]
                  ) -> tuple[str, tuple[tuple[str, str], ...]]:
    ref, pairs = echo
    return escaped(ref), tuple((escaped(name), escaped(value)) for name, value in pairs)
