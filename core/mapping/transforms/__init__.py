"""Field transforms: small pure functions, each raising TransformError with what was wrong.

A transform step in YAML is a name (`email`) or a one-key mapping with its arguments
(`{e164: {region: US}}`, `{truncate: 80}`). `build_transform` turns a step into a callable
once, at configuration time, so a bad argument is a configuration error (TransformSpecError,
reported by the loader with file, line and key), never a dead letter.

Every step is a pure function of (value, event body): most look only at the value; `template`
and `join` may also read other paths of the body. At run time a step raises TransformError
(and nothing else) when the value cannot become what the target expects.

    strip, lower, upper        text only
    email                      trim + lowercase + syntax check (no network)
    e164                       {e164: {region: US}} or {e164: US}; region: for numbers without +
    date, datetime             {date: {format: iso | epoch_ms, dayfirst: false}} or {date: epoch_ms}
    map                        {map: {values: {from: to}, default: x, ignore_case: false}}
    truncate                   {truncate: 80}
    first_name, last_name      split a full name ("Ada Lovelace", "Lovelace, Ada")
    template                   {template: "{data.object.first} {data.object.last}"}; {.} = value
    join                       {join: {paths: [a, b], separator: " "}}, or {join: ", "} on a list
    bool, number               parse "yes"/"0"/true..., "12.5"/"-3"/7...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.mapping.transforms.base import (
    CURRENT,
    Step,
    Transform,
    TransformError,
    TransformSpecError,
    _no_args,
    _require_text,
    kind_of,
    show,
)
from core.mapping.transforms.contact import _e164, _email_value, phone_region, to_e164
from core.mapping.transforms.dates import _date_value, _dates, _datetime_value, parse_moment
from core.mapping.transforms.text import (
    _join,
    _template,
    _text,
    _truncate,
    parse_template,
    split_name,
)
from core.mapping.transforms.values import _map, to_bool, to_number

__all__ = [
    "CURRENT",
    "FACTORIES",
    "Step",
    "Transform",
    "TransformError",
    "TransformSpecError",
    "build_transform",
    "kind_of",
    "parse_moment",
    "parse_template",
    "phone_region",
    "show",
    "split_name",
    "to_bool",
    "to_e164",
    "to_number",
]

# -- the registry -------------------------------------------------------------------------------

FACTORIES: dict[str, Callable[[Any], Transform]] = {
    "strip": _text("strip", str.strip),
    "lower": _text("lower", str.lower),
    "upper": _text("upper", str.upper),
    "email": _no_args("email", _email_value),
    "e164": _e164,
    "date": _dates("date", _date_value),
    "datetime": _dates("datetime", _datetime_value),
    "map": _map,
    "truncate": _truncate,
    "first_name": _no_args("first_name", lambda v: split_name(_require_text("first_name", v))[0]),
    "last_name": _no_args("last_name", lambda v: split_name(_require_text("last_name", v))[1]),
    "template": _template,
    "join": _join,
    "bool": _no_args("bool", to_bool),
    "number": _no_args("number", to_number),
}


def build_transform(step: Mapping[str, Any]) -> Step:
    """`{"e164": {"region": "US"}}` -> a Step. Raises TransformSpecError on unknown names/args."""
    if not isinstance(step, Mapping) or len(step) != 1:
        raise TransformSpecError(f"a transform is a name or a one-key mapping, got {show(step)}")
    ((name, args),) = step.items()
    factory = FACTORIES.get(name)
    if factory is None:
        raise TransformSpecError(
            f"unknown transform {name!r}; expected one of: {', '.join(sorted(FACTORIES))}"
        )
    built = factory(args)
    return built if isinstance(built, Step) else Step(str(name), built)
