"""Apply a mapping to an event: the record to write, the key to find it by, and what to skip.

Pure (no I/O). Every field-level problem is collected, so a dead letter tells the operator
everything to fix at once, not one problem per replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config.model import FieldSpec, MappingConfig
from core.errors import DataError
from core.mapping.normalize import normalize_match
from core.mapping.transforms import TransformError
from core.paths import get_path

#: record keys longer than this are hashed (they are Redis key names)
_MAX_KEY = 200


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or value == []


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

    def values(self) -> dict[str, Any]:
        return {f.name: f.value for f in self.fields}

    @property
    def target_owned(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.owner == "target")

    def as_json(self) -> dict[str, Any]:
        return {"object": self.object, "action": self.action,
                "match": {"field": self.match_field, "value": self.match_value},
                "fields": self.values()}


def first_value(body: Any, paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = get_path(body, path)
        if not _empty(value):
            return value
    return None


def match_value(mapping: MappingConfig, body: Any) -> str | None:
    if mapping.match is None:
        return None
    raw = first_value(body, mapping.match.from_)
    if _empty(raw) or isinstance(raw, (dict, list)):
        return None
    return normalize_match(mapping.match.normalize, raw,
                           fold_plus_addressing=mapping.match.fold_plus_addressing) or None


def record_key(mapping: MappingConfig, body: Any, fallback: str) -> str:
    """Connection + object + normalised match value: writes to one record are serialised on
    this key. Without a match value the delivery is its own key (`fallback`)."""
    value = match_value(mapping, body)
    ident = f"{mapping.match.field}={value}" if value is not None and mapping.match \
        else f"#{fallback}"
    key = f"{mapping.connection}:{mapping.object}:{ident}"
    if len(key) > _MAX_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{mapping.connection}:{mapping.object}:sha256={digest}"
    return key


def _field(spec: FieldSpec, body: Any, problems: list[dict[str, Any]]) -> FieldResult | None:
    source_value = spec.const if spec.has_const else first_value(body, spec.from_)
    value = source_value
    if _empty(value) and spec.has_default:
        value = spec.default
    if _empty(value):
        if spec.required:
            where = spec.from_[0] if len(spec.from_) == 1 else " or ".join(spec.from_)
            problems.append({"field": spec.name, "value": None,
                             "problem": f"required, but {where} is missing or empty"})
        return None
    for step, apply in zip(spec.transform, spec.steps, strict=True):
        try:
            value = apply(value)
        except TransformError as exc:
            (name,) = step
            problems.append({"field": spec.name, "value": source_value,
                             "problem": f"{name}: {exc}"})
            return None
    return FieldResult(spec.name, source_value, value, spec.owner)


def map_event(mapping: MappingConfig, body: Mapping[str, Any] | Any) -> MappedRecord:
    """The record this mapping writes for `body`, or DataError(category='mapping')."""
    problems: list[dict[str, Any]] = []
    results = [r for spec in mapping.fields if (r := _field(spec, body, problems)) is not None]
    key = match_value(mapping, body)
    if mapping.match is not None and key is None and mapping.action != "create_only":
        problems.append({"field": mapping.match.field, "value": None,
                         "problem": f"match key missing: {' or '.join(mapping.match.from_)} is "
                                    "empty, so the record cannot be found or created safely"})
    if problems:
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise DataError(f"mapping {mapping.name!r} failed: {summary}", category="mapping",
                        problems=problems)
    return MappedRecord(mapping=mapping.name, connection=mapping.connection,
                        object=mapping.object, action=mapping.action,
                        match_field=mapping.match.field if mapping.match else None,
                        match_value=key, fields=tuple(results))
