"""Contact transforms: `email` (trim, lowercase, syntax check) and `e164` phone numbers.

Email checking never touches the network; phone numbers are parsed with `phonenumbers`, with
an optional default region (`phone_region`) for numbers written without a country code.
`to_e164` is also used by match-key normalisation (core.mapping.normalize).
"""

from __future__ import annotations

from typing import Any

from core.mapping.normalize import normalize_email
from core.mapping.transforms.base import (
    Transform,
    TransformError,
    TransformSpecError,
    _options,
    _require_text,
    show,
)

# -- email --------------------------------------------------------------------------------------


def _email_value(value: Any) -> str:
    from email_validator import EmailNotValidError, validate_email

    email = normalize_email(_require_text("email", value))
    if not email:
        raise TransformError("not a valid email address: it is empty")
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise TransformError(f"not a valid email address: {exc}") from None
    return email


# -- phone numbers ------------------------------------------------------------------------------


def phone_region(value: Any) -> str:
    """A default region for phone parsing ('US'), or ValueError."""
    import phonenumbers

    region = value.upper() if isinstance(value, str) else None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise TransformSpecError(
            f"e164: unknown region {show(value)}; expected a two-letter "
            "country code such as US, GB or DE"
        )
    return str(region)


def to_e164(value: str, region: str | None) -> str:
    """`(415) 555-0123` with region US -> `+14155550123`. Raises TransformError only."""
    import phonenumbers

    text = value.strip()
    if not text:
        raise TransformError("not a phone number: it is empty")
    try:
        number = phonenumbers.parse(text, region)
        possible = phonenumbers.is_possible_number(number)
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException as exc:
        if (
            exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
            and region is None
            and not text.startswith("+")
        ):
            raise TransformError(
                f"{show(text)} has no country code (+1, +44, ...) and no default region is "
                "set (e.g. {e164: {region: US}})"
            ) from None
        raise TransformError(f"not a phone number: {exc._msg}") from None
    except Exception as exc:  # the parser on hostile input: still only a bad value
        raise TransformError(f"not a phone number ({type(exc).__name__})") from None
    if not possible:
        raise TransformError(f"{show(text)} is not a possible phone number for its country")
    return formatted


def _e164(args: Any) -> Transform:
    if isinstance(args, str):
        args = {"region": args}
    options = _options("e164", args, {"region": ""}, "{e164: {region: US}}")
    region = phone_region(options["region"]) if options.get("region") is not None else None

    def apply(value: Any, body: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return to_e164(_require_text("e164", value), region)

    return apply
