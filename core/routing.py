"""Which mappings an event matches: its source, its type, and simple predicates on its body."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.config.model import MappingConfig, Predicate
from core.paths import MISSING, get_path


def _holds(predicate: Predicate, body: Any) -> bool:
    value = get_path(body, predicate.path, MISSING)
    if (
        predicate.exists is not None
        and (value is not MISSING and value is not None) != predicate.exists
    ):
        return False
    if predicate.has_equals and (value is MISSING or value != predicate.equals):
        return False
    return not (
        predicate.one_of is not None and (value is MISSING or value not in predicate.one_of)
    )


def matches(mapping: MappingConfig, event_type: str | None, body: Any) -> bool:
    types = mapping.when.event_types
    if types is not None and event_type not in types:
        return False
    return all(_holds(p, body) for p in mapping.when.predicates)


def route(
    mappings: Iterable[MappingConfig], event_type: str | None, body: Any
) -> list[MappingConfig]:
    """The mappings (of the event's source) that this event should be delivered through."""
    return [m for m in mappings if matches(m, event_type, body)]
