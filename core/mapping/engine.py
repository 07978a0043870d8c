"""Apply a mapping to an event: the record to write, the key to find it by, and what to skip.

Pure (no I/O). Every field-level problem is collected, so a dead letter tells the operator
everything to fix at once, not one problem per replay.

Per field: the value is `const`, or the first non-empty of the `from` paths (or nothing, when
the first transform builds it from the event: template, join), then each transform in order.
A value that is empty (missing at the source, or empty after the transforms) is replaced by
`default` as written (not transformed); still empty, it is a problem when `required` and
otherwise skipped. `owner: target` fields are written only where the target's value is empty
(the connector decides that, reading the record once).

Every written value and the match key must be encodable as UTF-8 text: a lone surrogate
(JSON's `"\ud800"`) can be neither sent nor stored, so it is a mapping problem naming the
field (a data error on the first attempt, never a bug to retry).

The record is then checked against the target field spec of its connection and object
(core.mapping.fieldspec), when the configuration declares one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.config.model import FieldSpec, MappingConfig, ObjectSpec, RelatedSpec
from core.errors import DataError
from core.mapping.empty import is_empty
from core.mapping.fieldspec import check_record
from core.mapping.record import (
    FieldResult,
    MappedRecord,
    first_source,
    key_of,
    match_value,
)
from core.mapping.transforms import TransformError
from core.text import escaped, escaped_all, first_unencodable
from core.vocabulary import DeadCategory

#: what the target is asked to do, by mapping action (the dry run's "operation")
OPERATIONS = {"upsert": "upsert", "create_only": "create", "update_only": "update"}


@dataclass(frozen=True)
class FieldOutcome:
    """What became of one field of the mapping, written or not, and why (the dry run's view)."""

    name: str
    origin: str | None  # the path that gave the value, "const", "default", None (built)
    source_value: Any
    value: Any
    owner: str
    write: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.origin,
            "source_value": self.source_value,
            "value": self.value,
            "write": self.write,
            "reason": self.reason,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class RelatedOutcome:
    """What becomes of one related record (the dry run's view): found or created on its
    match key, then linked; or skipped when the event has no key for it."""

    link: str
    object: str
    match_field: str
    match_value: str | None
    fields: tuple[FieldOutcome, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "object": self.object,
            "operation": "find_or_create" if self.match_value is not None else "skip",
            "match": {"field": self.match_field, "value": self.match_value},
            "fields": [f.as_json() for f in self.fields],
        }


@dataclass(frozen=True)
class Evaluation:
    """A mapping applied to one event: every field's outcome, every problem, and the record
    (None when there are problems)."""

    mapping: MappingConfig
    match_value: str | None
    fields: tuple[FieldOutcome, ...]
    problems: tuple[dict[str, Any], ...]
    category: DeadCategory | None = None  # mapping | validation, when there are problems
    record: MappedRecord | None = None
    related: tuple[RelatedOutcome, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def operation(self) -> str:
        """upsert | create | update, or fail."""
        return OPERATIONS.get(self.mapping.action, self.mapping.action) if self.ok else "fail"

    def error(self) -> DataError | None:
        if self.ok:
            return None
        # escaped: the dead letter is stored as text, so must hold nothing UTF-8 cannot encode
        problems = [escaped_all(dict(p)) for p in self.problems]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        what = (
            f"mapping {self.mapping.name!r} failed"
            if self.category == DeadCategory.MAPPING
            else f"mapping {self.mapping.name!r}: the record does not fit the target's field spec "
            f"({self.mapping.connection} {self.mapping.object})"
        )
        return DataError(
            f"{what}: {summary}", category=self.category or DeadCategory.MAPPING, problems=problems
        )


def _written(owner: str, how: str = "") -> str:
    text = "written only if empty at the target" if owner == "target" else "written"
    return f"{text} ({how})" if how else text


def _field(spec: FieldSpec, body: Any, problems: list[dict[str, Any]]) -> FieldOutcome:
    built = not spec.has_const and not spec.from_  # by a template/join transform
    origin: str | None
    if spec.has_const:
        origin, source_value, where = "const", spec.const, "const"
    elif built:
        origin, source_value = None, None
        where = f"the {next(iter(spec.transform[0]))} transform" if spec.transform else "the event"
    else:
        origin, source_value = first_source(body, spec.from_)
        where = " or ".join(spec.from_)

    def outcome(value: Any, write: bool, reason: str) -> FieldOutcome:
        return FieldOutcome(spec.name, origin, source_value, value, spec.owner, write, reason)

    value = source_value
    transformed = False
    if built or not is_empty(value):
        for step, apply in zip(spec.transform, spec.steps, strict=True):
            try:
                value = apply(value, body)
            except TransformError as exc:
                (name,) = step
                problems.append(
                    {"field": spec.name, "value": source_value, "problem": f"{name}: {exc}"}
                )
                return outcome(None, False, f"error: {name}: {exc}")
            transformed = True
    if not is_empty(value):
        return outcome(value, True, _written(spec.owner))
    emptied = (
        f"{where} is empty after the transforms" if transformed else f"{where} is missing or empty"
    )
    if spec.has_default and not is_empty(spec.default):
        origin = "default" if origin is None or is_empty(source_value) else origin
        return outcome(spec.default, True, _written(spec.owner, f"the default: {emptied}"))
    if spec.required:
        problems.append(
            {"field": spec.name, "value": source_value, "problem": f"required, but {emptied}"}
        )
        return outcome(None, False, f"error: required, but {emptied}")
    return outcome(None, False, f"skipped: {emptied}")


def _unencodable(name: str, value: Any, problems: list[dict[str, Any]]) -> str | None:
    """If `value` holds text UTF-8 cannot encode, record the problem and return it."""
    found = first_unencodable(value)
    if found is None:
        return None
    where, index, char = found
    problem = (
        f"cannot be encoded as UTF-8 text: {escaped(char)} (a lone surrogate) at "
        f"character {index}{f' of {where}' if where else ''}; the sender's JSON "
        "holds invalid Unicode, so fix the value at the source, then replay"
    )
    problems.append({"field": name, "value": value, "problem": problem})
    return problem


def _encodable(outcome: FieldOutcome, problems: list[dict[str, Any]]) -> FieldOutcome:
    problem = _unencodable(outcome.name, outcome.value, problems) if outcome.write else None
    return outcome if problem is None else replace(outcome, write=False, reason=f"error: {problem}")


def evaluate(
    mapping: MappingConfig, body: Mapping[str, Any] | Any, spec: ObjectSpec | None = None
) -> Evaluation:
    """Apply `mapping` to `body` without raising: each field's outcome and every problem.

    `spec`: the target field spec to check against; None uses the mapping's own (the spec of
    its connection and object, resolved when the configuration was loaded).
    """
    problems: list[dict[str, Any]] = []
    outcomes = [_encodable(_field(f, body, problems), problems) for f in mapping.fields]
    key = match_value(mapping, body)
    if (
        mapping.match is not None
        and key is not None
        and all(p["field"] != mapping.match.field for p in problems)
    ):
        _unencodable(mapping.match.field, key, problems)
    if mapping.match is not None and key is None and mapping.action != "create_only":
        problems.append(
            {
                "field": mapping.match.field,
                "value": None,
                "problem": f"match key missing: {' or '.join(mapping.match.from_)} is "
                "empty, so the record cannot be found or created safely",
            }
        )
    related = tuple(_related(mapping, r, body, problems) for r in mapping.related)
    category = DeadCategory.MAPPING if problems else None
    target = spec if spec is not None else mapping.target
    if target is not None:
        failed = {p["field"] for p in problems}
        written = {o.name: o.value for o in outcomes if o.write}
        invalid = check_record(
            target, written, creating=mapping.action != "update_only", failed=failed
        )
        rejected = {p["field"]: p for p in invalid}
        outcomes = [
            replace(o, write=False, reason=f"rejected: {rejected[o.name]['problem']}")
            if o.name in rejected
            else o
            for o in outcomes
        ]
        problems.extend(invalid)
        category = category or (DeadCategory.VALIDATION if invalid else None)
    record = None
    if not problems:
        record = MappedRecord(
            mapping=mapping.name,
            connection=mapping.connection,
            object=mapping.object,
            action=mapping.action,
            match_field=mapping.match.field if mapping.match else None,
            match_value=key,
            fields=tuple(
                FieldResult(o.name, o.source_value, o.value, o.owner) for o in outcomes if o.write
            ),
            external_id=bool(mapping.match and mapping.match.external_id),
            related=tuple(
                (r.link, _related_record(mapping, r)) for r in related if r.match_value is not None
            ),
        )
    return Evaluation(
        mapping=mapping,
        match_value=key,
        fields=tuple(outcomes),
        problems=tuple(problems),
        category=category,
        record=record,
        related=related,
    )


def _related(
    mapping: MappingConfig, spec: RelatedSpec, body: Any, problems: list[dict[str, Any]]
) -> RelatedOutcome:
    """A related record's key and fields; its field problems join the mapping's, named
    `related.<link>.<field>`. Without a key (no company given, say) it is skipped and the
    main record goes without the link."""
    own: list[dict[str, Any]] = []
    outcomes = tuple(_encodable(_field(f, body, own), own) for f in spec.fields)
    key = key_of(spec.match, body)
    if key is not None:
        _unencodable(spec.match.field, key, own)
        problems.extend({**p, "field": f"related.{spec.link}.{p['field']}"} for p in own)
    return RelatedOutcome(spec.link, spec.object, spec.match.field, key, outcomes)


def _related_record(mapping: MappingConfig, outcome: RelatedOutcome) -> MappedRecord:
    return MappedRecord(
        mapping=mapping.name,
        connection=mapping.connection,
        object=outcome.object,
        action="upsert",
        match_field=outcome.match_field,
        match_value=outcome.match_value,
        fields=tuple(
            FieldResult(o.name, o.source_value, o.value, o.owner) for o in outcome.fields if o.write
        ),
    )


def map_event(
    mapping: MappingConfig, body: Mapping[str, Any] | Any, spec: ObjectSpec | None = None
) -> MappedRecord:
    """The record this mapping writes for `body`, or DataError with every field-level problem
    (category 'mapping' when the event cannot be mapped, 'validation' when the mapped record
    does not fit the target field spec). `spec`: as for `evaluate`."""
    result = evaluate(mapping, body, spec)
    error = result.error()
    if error is not None:
        raise error
    assert result.record is not None
    return result.record
