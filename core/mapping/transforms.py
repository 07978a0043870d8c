"""Field transforms: small pure functions, each raising TransformError with what was wrong.

A transform step in YAML is a name (`email`) or a one-key mapping with its arguments
(`{e164: {region: US}}`, `{truncate: 80}`). `build_transform` turns a step into a callable
once, at configuration time, so a bad argument is a configuration error, not a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.mapping.normalize import normalize_email

Transform = Callable[[Any], Any]


class TransformError(ValueError):
    """A value that the transform cannot turn into what the target expects."""


def to_e164(value: str, region: str | None) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise TransformError(f"not a phone number ({exc._msg})") from None
    if not phonenumbers.is_possible_number(number):
        raise TransformError("not a possible phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(name: str, func: Callable[[str], Any]) -> Transform:
    def apply(value: Any) -> Any:
        if not isinstance(value, str):
            raise TransformError(f"{name} expects text, got {type(value).__name__}")
        return func(value)

    return apply


def _email(_: Any) -> Transform:
    from email_validator import EmailNotValidError, validate_email

    def apply(value: Any) -> str:
        if not isinstance(value, str):
            raise TransformError(f"email expects text, got {type(value).__name__}")
        email = normalize_email(value)
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            raise TransformError(f"not a valid email address: {exc}") from None
        return email

    return apply


def _e164(args: Any) -> Transform:
    region = (args or {}).get("region") if isinstance(args, Mapping) else None
    return _text("e164", lambda v: to_e164(v, region))


def _truncate(args: Any) -> Transform:
    if not isinstance(args, int) or isinstance(args, bool) or args < 1:
        raise ValueError("truncate takes a positive length, e.g. {truncate: 80}")
    return _text("truncate", lambda v: v[:args])


FACTORIES: dict[str, Callable[[Any], Transform]] = {
    "strip": lambda _: _text("strip", str.strip),
    "lower": lambda _: _text("lower", str.lower),
    "upper": lambda _: _text("upper", str.upper),
    "email": _email,
    "e164": _e164,
    "truncate": _truncate,
}


def build_transform(step: Mapping[str, Any]) -> Transform:
    """`{"e164": {"region": "US"}}` -> callable. Raises ValueError on unknown names/args."""
    (name, args), = step.items()
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown transform {name!r}; expected one of: "
                         f"{', '.join(sorted(FACTORIES))}")
    return factory(args)
