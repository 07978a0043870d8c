"""The shared ground of every transform: the error, the built step, and the small helpers.

TransformError is what a step raises at run time for a value it cannot convert; Step is one
built step (a callable of value and event body); `show` and `kind_of` describe values in error
messages; CURRENT is the path meaning "the field's own value". The argument helpers below check
a step's YAML arguments at build time and raise TransformSpecError, so a bad argument is a
configuration error, never a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import CrmhubError

Transform = Callable[[Any, Any], Any]

#: the placeholder / path that means "the field's own value" in template and join
CURRENT = "."


class TransformError(CrmhubError, ValueError):
    """A value that the transform cannot turn into what the target expects."""


class TransformSpecError(CrmhubError, ValueError):
    """A transform step written wrongly in the YAML (unknown name, bad arguments): found when
    the configuration is loaded, and reported there with file, line and key."""


@dataclass(frozen=True)
class Step:
    """One built transform step: call it as step(value, body)."""

    name: str
    func: Transform
    #: every value the step can produce, when that is a closed set (map): checked against the
    #: target field spec at load time
    outputs: tuple[Any, ...] | None = None

    def __call__(self, value: Any, body: Any = None) -> Any:
        return self.func(value, body)


def show(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    """A value's kind in an error message (text, number, boolean, list, object, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _require_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TransformError(f"{name} expects text, got {kind_of(value)} {show(value)}")
    return value


# -- argument checking (build time: ValueError) ------------------------------------------------


def _no_args(name: str, func: Callable[[Any], Any]) -> Callable[[Any], Transform]:
    def factory(args: Any) -> Transform:
        if args is not None:
            raise TransformSpecError(f"{name} takes no arguments (write it as `{name}`)")
        return lambda value, body: func(value)

    return factory


def _options(name: str, args: Any, allowed: Mapping[str, str], example: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TransformSpecError(f"{name} takes a mapping of options, e.g. {example}")
    unknown = sorted(str(k) for k in args if k not in allowed)
    if unknown:
        raise TransformSpecError(
            f"{name}: unknown option {unknown[0]!r}; expected: "
            f"{', '.join(allowed)} (e.g. {example})"
        )
    return dict(args)


def _choice(name: str, option: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise TransformSpecError(
            f"{name}: {option} must be one of {', '.join(choices)}, got {show(value)}"
        )
    return str(value)


def _flag(name: str, option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TransformSpecError(f"{name}: {option} must be true or false, got {show(value)}")
    return value
