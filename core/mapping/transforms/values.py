"""Value transforms: `map` (picklists), `bool` (`to_bool`) and `number` (`to_number`).

`map` translates source values to target values through a table checked at build time (its
outputs are known, so the loader can check them against the target field); `to_bool` and
`to_number` parse the usual spellings of yes/no values and plain numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from core.mapping.transforms.base import (
    Step,
    Transform,
    TransformError,
    TransformSpecError,
    _flag,
    _options,
    kind_of,
    show,
)

# -- picklists ----------------------------------------------------------------------------------


def _map_key(value: Any, ignore_case: bool) -> str:
    if isinstance(value, bool):
        key = "true" if value else "false"
    elif value is None:
        key = "null"
    else:
        key = str(value).strip()
    return key.casefold() if ignore_case else key


def _map(args: Any) -> Transform:
    example = "{map: {values: {gold: Gold, silver: Silver}, default: Other}}"
    options = _options("map", args, {"values": "", "default": "", "ignore_case": ""}, example)
    values = options.get("values")
    if not isinstance(values, Mapping) or not values:
        raise TransformSpecError(
            f"map needs `values`, a non-empty mapping from source to target values, e.g. {example}"
        )
    ignore_case = _flag("map", "ignore_case", options.get("ignore_case", False))
    table: dict[str, Any] = {}
    for source, target in values.items():
        if isinstance(source, (list, dict)):
            raise TransformSpecError(f"map: {show(source)} cannot be a source value")
        key = _map_key(source, ignore_case)
        if key in table and table[key] != target:
            raise TransformSpecError(
                f"map: source values {show(source)} and another one are "
                f"the same key {key!r} (values are compared as trimmed text"
                f"{', ignoring case' if ignore_case else ''})"
            )
        table[key] = target
    has_default = "default" in options
    default = options.get("default")
    expected = ", ".join(sorted(table))

    def apply(value: Any, body: Any) -> Any:
        if isinstance(value, (list, Mapping)):
            raise TransformError(f"map expects a single value, got {kind_of(value)} {show(value)}")
        key = _map_key(value, ignore_case)
        if key in table:
            return table[key]
        if has_default:
            return default
        raise TransformError(
            f"unknown value {show(value)}; expected one of: {expected} "
            "(or give the map a `default`)"
        )

    outputs = (*table.values(), default) if has_default else tuple(table.values())
    return Step("map", apply, outputs)


# -- scalars ------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
    raise TransformError(
        f"not a yes/no value: {show(value)} (expected true/false, yes/no, 1/0, on/off)"
    )


def to_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TransformError(f"not a number: {kind_of(value)} {show(value)}")
    if isinstance(value, (int, float)):
        number: int | float = value
    else:
        text = value.strip()
        if len(text) > 100 or not _NUMBER.fullmatch(text):
            hint = (
                " (thousands separators and decimal commas are ambiguous; send plain digits)"
                if "," in text
                else ""
            )
            raise TransformError(f"not a number: {show(value)}{hint}")
        integral = not any(c in text for c in ".eE")
        number = int(text) if integral else float(text)
    if isinstance(number, float) and not math.isfinite(number):
        raise TransformError(f"not a finite number: {show(value)}")
    return number
