"""Normalising match keys, so the same person is found whatever case or padding they arrive in.

Pure functions that never raise on text; every one is idempotent (normalising twice changes
nothing).

    email   trim + lowercase; with `fold_plus_addressing`, `ada+crm@x.com` -> `ada@x.com`
    phone   E.164 when the number parses (with the match's `region` for national numbers),
            else its digits (and a leading +), so formatting never splits one number in two
    lower   trim + lowercase
    strip   trim
    (none)  trim + collapse inner whitespace
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")
_NOT_DIGITS = re.compile(r"[^0-9]")


def normalize_email(value: str, *, fold_plus_addressing: bool = False) -> str:
    """Trim and lowercase. With plus-address folding, `ada+crm@x.com` -> `ada@x.com`."""
    email = value.strip().lower()
    if fold_plus_addressing and "@" in email:
        local, _, domain = email.rpartition("@")
        email = f"{local.split('+', 1)[0] or local}@{domain}"
    return email


def normalize_phone(value: str, region: str | None = None) -> str:
    """`(415) 555-0123` (region US) and `+1 415 555 0123` -> `+14155550123`. Text that does
    not parse keeps only its digits (and a leading +)."""
    from core.mapping.transforms import TransformError, to_e164

    text = value.strip()
    digits = _NOT_DIGITS.sub("", text)
    reduced = f"+{digits}" if text.startswith("+") and digits else digits
    for candidate in (text, reduced):  # E.164 output parses to itself: idempotent
        try:
            return to_e164(candidate, region)
        except TransformError:
            continue
    return reduced


def normalize_match(
    kind: str | None,
    value: object,
    *,
    fold_plus_addressing: bool = False,
    region: str | None = None,
) -> str:
    text = str(value)
    if kind == "email":
        return normalize_email(text, fold_plus_addressing=fold_plus_addressing)
    if kind == "lower":
        return text.strip().lower()
    if kind == "strip":
        return text.strip()
    if kind == "phone":
        return normalize_phone(text, region)
    return _WHITESPACE.sub(" ", text).strip() if isinstance(value, str) else text
