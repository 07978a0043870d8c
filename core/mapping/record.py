"""The record a mapping produces, and the keys writes are found and serialised by: the
match value (normalised), a `fetch:` mapping's record id, the record key. Pure (no I/O);
core.mapping.engine builds records, the connectors write them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from core.config.model import MappingConfig, MatchSpec
from core.mapping.empty import is_empty
from core.mapping.normalize import normalize_match
from core.paths import get_path
from core.text import first_unencodable

#: record keys longer than this are hashed (they are Redis key names)
_MAX_KEY = 200


@dataclass(frozen=True)
class FieldResult:
    name: str
    source_value: Any
    value: Any
    owner: str


@dataclass(frozen=True)
class MappedRecord:
    mapping: str
    connection: str
    object: str
    action: str
    match_field: str | None
    match_value: str | None
    fields: tuple[FieldResult, ...] = field(default=())
    #: the match field is an External ID field at the target (upsert on it)
    external_id: bool = False
    #: records found or created first, each with the field of this one that links to it
    related: tuple[tuple[str, MappedRecord], ...] = field(default=())

    def values(self) -> dict[str, Any]:
        return {f.name: f.value for f in self.fields}

    def linked(self, link: str, record_id: str) -> MappedRecord:
        """This record with `link` set to a related record's id."""
        kept = tuple(f for f in self.fields if f.name != link)
        return replace(self, fields=(*kept, FieldResult(link, record_id, record_id, "source")))

    @property
    def target_owned(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.owner == "target")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": self.object,
            "action": self.action,
            "match": {"field": self.match_field, "value": self.match_value},
            "fields": self.values(),
        }
        if self.related:
            out["related"] = {link: r.as_json() for link, r in self.related}
        return out


def first_source(body: Any, paths: tuple[str, ...]) -> tuple[str | None, Any]:
    """(path, value) of the first of `paths` with a non-empty value, or (None, None)."""
    for path in paths:
        value = get_path(body, path)
        if not is_empty(value):
            return path, value
    return None, None


def first_value(body: Any, paths: tuple[str, ...]) -> Any:
    return first_source(body, paths)[1]


def match_value(mapping: MappingConfig, body: Any) -> str | None:
    """The normalised find-or-create key of `body`, or None when it has none."""
    return key_of(mapping.match, body)


def key_of(match: MatchSpec | None, body: Any) -> str | None:
    if match is None:
        return None
    raw = first_value(body, match.from_)
    if is_empty(raw) or isinstance(raw, (dict, list)):
        return None
    return (
        normalize_match(
            match.normalize,
            raw,
            fold_plus_addressing=match.fold_plus_addressing,
            region=match.region,
        )
        or None
    )


def fetch_id(mapping: MappingConfig, body: Any) -> str | None:
    """The id of the record a `fetch:` mapping reads, from the event, or None."""
    if mapping.fetch is None:
        return None
    raw = first_value(body, mapping.fetch.id)
    return None if is_empty(raw) or isinstance(raw, (dict, list)) else str(raw)


def record_key(mapping: MappingConfig, body: Any, fallback: str) -> str:
    """Connection + object + normalised match value: writes to one record are serialised on
    this key. Without a match value the delivery is its own key (`fallback`).

    A `fetch:` mapping's match value is in the fetched record, which the receiver has not
    read: its writes are serialised on the fetched record's id instead (one source record,
    one target record)."""
    value = match_value(mapping, body)
    fetched = fetch_id(mapping, body)
    if fetched is not None and mapping.fetch is not None:
        ident = f"fetch={mapping.fetch.connection}/{mapping.fetch.object}/{fetched}"
    elif value is not None and mapping.match:
        ident = f"{mapping.match.field}={value}"
    else:
        ident = f"#{fallback}"
    key = f"{mapping.connection}:{mapping.object}:{ident}"
    if len(key) > _MAX_KEY or first_unencodable(key):
        # a key Redis could not store as text (a lone surrogate) is hashed too, so the
        # receiver accepts the event and the worker dead-letters it naming the field
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        key = f"{mapping.connection}:{mapping.object}:sha256={digest}"
    return key
