"""Target field specs: what a connector object accepts, checked before any write.

A spec is declared per connection and object in the YAML

    connections:
      crm:
        objects:
          contacts:
            fields:
              email: {type: email, required: true}
              lifecyclestage: {type: enum, values: [lead, customer]}
              company: {type: string, max_length: 80}

and the mapping engine checks every mapped record against it (core.mapping.engine), reporting
every field-level problem at once: which field, which value, what was expected. The same checks
run at load time on the values a mapping can only ever write (consts, defaults, the outputs of a
`map`), so those mistakes are configuration errors, not dead letters.

Types: string, number, boolean, date (YYYY-MM-DD, or epoch milliseconds at UTC midnight),
datetime (ISO 8601, or epoch milliseconds), enum (one of `values`), email, phone (E.164).
`required` fields must be written whenever the record may be created (every action but
update_only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from core.config.model import MappingConfig, ObjectSpec, TargetField
from core.mapping.empty import is_empty
from core.mapping.transforms import kind_of, show

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_MS_PER_DAY = 86_400_000


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return (_integer(value) or isinstance(value, float)) and math.isfinite(value)


def _is_date(value: Any) -> bool:
    if _integer(value):
        return value % _MS_PER_DAY == 0
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _is_datetime(value: Any) -> bool:
    if _integer(value):
        return True
    if isinstance(value, str) and value[:1].isdigit():
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _is_email(value: Any) -> bool:
    from email_validator import EmailNotValidError, validate_email

    if not isinstance(value, str):
        return False
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _in_picklist(value: Any, values: tuple[Any, ...]) -> bool:
    return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in values)


#: type -> (test, what it is called, how to get there)
_TYPES: dict[str, tuple[Any, str, str]] = {
    "string": (lambda v: isinstance(v, str), "text", ""),
    "number": (_number, "a number", " (add the number transform)"),
    "boolean": (lambda v: isinstance(v, bool), "true or false", " (add the bool transform)"),
    "date": (
        _is_date,
        "a date (YYYY-MM-DD, or epoch milliseconds at UTC midnight)",
        " (add the date transform)",
    ),
    "datetime": (
        _is_datetime,
        "a date and time (ISO 8601, or epoch milliseconds)",
        " (add the datetime transform)",
    ),
    "email": (_is_email, "an email address", " (add the email transform)"),
    "phone": (
        lambda v: isinstance(v, str) and _E164.fullmatch(v) is not None,
        "a phone number in E.164 form (+14155550123)",
        " (add {e164: {region: ..}})",
    ),
}


def expected(spec: TargetField) -> str:
    """What the target accepts in this field, in words."""
    if spec.values is not None:
        what = "one of: " + ", ".join(str(v) for v in spec.values)
    elif spec.type is not None:
        what = _TYPES[spec.type][1]
    else:
        what = "any value"
    if spec.max_length is not None:
        what += f", at most {spec.max_length} characters"
    return what


def check_value(spec: TargetField, value: Any) -> str | None:
    """What is wrong with writing `value` to this field, or None."""
    if spec.values is not None:
        if not _in_picklist(value, spec.values):
            return (
                f"{show(value)} is not in the target's picklist (map it with {{map: "
                "{values: ...}})"
            )
    elif spec.type is not None:
        test, what, hint = _TYPES[spec.type]
        if not test(value):
            return f"{kind_of(value)} {show(value)} is not {what}{hint}"
    if spec.max_length is not None and isinstance(value, str) and len(value) > spec.max_length:
        return (
            f"{len(value)} characters, more than the {spec.max_length} the target accepts "
            f"(add {{truncate: {spec.max_length}}})"
        )
    return None


def check_record(
    spec: ObjectSpec, values: Mapping[str, Any], *, creating: bool, failed: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every problem with writing `values` (field -> value) to an object of this spec.

    `creating`: the write may create the record, so required fields must be present.
    `failed`: fields that already failed mapping (not reported again as missing).
    """
    problems: list[dict[str, Any]] = []
    skip = set(failed)
    for name, value in values.items():
        field = spec.fields.get(name)
        if field is None or is_empty(value):
            continue
        problem = check_value(field, value)
        if problem is not None:
            problems.append(
                {"field": name, "value": value, "problem": problem, "expected": expected(field)}
            )
    if creating:
        for name, field in spec.fields.items():
            if field.required and name not in skip and is_empty(values.get(name)):
                problems.append(
                    {
                        "field": name,
                        "value": values.get(name),
                        "problem": "required by the target, but the mapping gave it no value",
                        "expected": expected(field),
                    }
                )
    return problems


def static_problems(mapping: MappingConfig) -> list[tuple[str, str]]:
    """Load-time checks of a mapping against its target spec: (key under the mapping, message)
    for required fields it never writes and for consts, defaults and `map` outputs the target
    would refuse."""
    spec = mapping.target
    if spec is None:
        return []
    problems: list[tuple[str, str]] = []
    written = {f.name for f in mapping.fields}
    if mapping.action != "update_only":
        for name, field in spec.fields.items():
            if field.required and name not in written:
                problems.append(
                    (
                        "fields",
                        f"the target ({mapping.connection} "
                        f"{mapping.object}) requires field {name!r}, but "
                        "this mapping never writes it",
                    )
                )
    for f in mapping.fields:
        target = spec.fields.get(f.name)
        if target is None:
            continue
        fixed: list[tuple[str, Any]] = []
        if f.has_const and not f.transform:
            fixed.append((f"fields.{f.name}.const", f.const))
        if f.has_default:
            fixed.append((f"fields.{f.name}.default", f.default))
        outputs = getattr(f.steps[-1], "outputs", None) if f.steps else None
        if outputs is not None:
            fixed.extend((f"fields.{f.name}.transform.{len(f.steps) - 1}", out) for out in outputs)
        for key, value in fixed:
            if is_empty(value):
                continue
            problem = check_value(target, value)
            if problem is not None:
                problems.append((key, f"{problem}; the target expects {expected(target)}"))
    return problems
