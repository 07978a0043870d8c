"""Text transforms: strip/lower/upper, truncate, first/last name, and template/join.

The case and length steps act on the value alone; `split_name` splits a full name for
`first_name` and `last_name`; `template` (via `parse_template`) and `join` build a text from
the value and other paths of the event body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.mapping.transforms.base import (
    CURRENT,
    Transform,
    TransformError,
    TransformSpecError,
    _no_args,
    _options,
    _require_text,
    kind_of,
    show,
)
from core.paths import PathSyntaxError, get_path, parse_path

# -- text ---------------------------------------------------------------------------------------


def _text(name: str, func: Callable[[str], Any]) -> Callable[[Any], Transform]:
    return _no_args(name, lambda value: func(_require_text(name, value)))


def _truncate(args: Any) -> Transform:
    if not isinstance(args, int) or isinstance(args, bool) or args < 1:
        raise TransformSpecError("truncate takes a positive length, e.g. {truncate: 80}")
    return lambda value, body: _require_text("truncate", value)[:args]


# -- names --------------------------------------------------------------------------------------

_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})


def split_name(full: str) -> tuple[str, str]:
    """("first", "last") of a full name: `Ada Lovelace`, `Ada King Lovelace` (last: the rest),
    `Lovelace, Ada` (reversed), `Martin Luther King, Jr.` (a suffix stays with the last name).
    """
    text = " ".join(full.split())
    head, comma, tail = text.partition(",")
    suffix = ""
    if comma and tail.strip().lower().rstrip(".") not in _SUFFIXES:
        return tail.strip(), head.strip()
    if comma:
        text, suffix = head.strip(), tail.strip()
    first, _, last = text.partition(" ")
    if suffix:
        last = f"{last}, {suffix}" if last else suffix
    return first, last


# -- building values from the event -------------------------------------------------------------


def _render(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TransformError(f"{where} is {kind_of(value)} {show(value)}, not a single value")


def _lookup(path: str, value: Any, body: Any) -> Any:
    return value if path == CURRENT else get_path(body, path)


def _check_path(name: str, path: Any) -> str:
    if not isinstance(path, str):
        raise TransformSpecError(f"{name}: {show(path)} is not a dotted path")
    path = path.strip()
    if path != CURRENT:
        try:
            parse_path(path)
        except PathSyntaxError as exc:
            raise TransformSpecError(f"{name}: {exc}") from None
    return path


def parse_template(text: str) -> tuple[str | tuple[str], ...]:
    """`"{a.b} and {{x}}"` -> (("a.b",), " and {x}"): literals and (path,) placeholders."""
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i)
            if end == -1 or "{" in text[i + 1 : end]:
                raise TransformSpecError(
                    f"template: '{{' at position {i} is not closed "
                    "(write '{{{{' for a literal brace)"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((_check_path("template", text[i + 1 : end]),))
            i = end + 1
        elif char == "}":
            raise TransformSpecError(
                f"template: '}}' at position {i} has no opening '{{' (write "
                "'}}}}' for a literal brace)"
            )
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _template(args: Any) -> Transform:
    if not isinstance(args, str):
        raise TransformSpecError(
            "template takes a text with {dotted.paths}, e.g. "
            '{template: "{data.object.first} {data.object.last}"}'
        )
    parts = parse_template(args)
    if not any(isinstance(p, tuple) for p in parts):
        raise TransformSpecError("template has no {placeholders}; for a fixed value use `const`")

    def apply(value: Any, body: Any) -> str:
        out = [
            p
            if isinstance(p, str)
            else _render(_lookup(p[0], value, body), f"template: {{{p[0]}}}")
            for p in parts
        ]
        return "".join(out).strip()  # missing values render empty

    return apply


def _join(args: Any) -> Transform:
    if isinstance(args, str):
        args = {"separator": args}
    example = '{join: {paths: [data.object.first, data.object.last], separator: " "}}'
    options = _options("join", args, {"paths": "", "separator": ""}, example)
    separator = options.get("separator", " ")
    if not isinstance(separator, str):
        raise TransformSpecError(f"join: separator must be text, got {show(separator)}")
    paths: tuple[str, ...] | None = None
    if "paths" in options:
        raw = options["paths"]
        if not isinstance(raw, list) or not raw:
            raise TransformSpecError(
                f"join: paths must be a non-empty list of dotted paths, e.g. {example}"
            )
        paths = tuple(_check_path("join", p) for p in raw)

    def apply(value: Any, body: Any) -> str:
        items: list[Any] = []
        for where, item in (
            [(p, _lookup(p, value, body)) for p in paths]
            if paths is not None
            else [(CURRENT, value)]
        ):
            for element in item if isinstance(item, list) else [item]:
                text = _render(element, f"join: {where}")
                if text.strip():
                    items.append(text)
        return separator.join(items)

    return apply
