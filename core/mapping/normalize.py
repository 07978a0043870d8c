"""Normalising match keys, so the same person is found whatever case or padding they arrive in.

Pure functions; every one is idempotent (normalising twice changes nothing).
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")


def normalize_email(value: str, *, fold_plus_addressing: bool = False) -> str:
    """Trim and lowercase. With plus-address folding, `ada+crm@x.com` -> `ada@x.com`."""
    email = value.strip().lower()
    if fold_plus_addressing and "@" in email:
        local, _, domain = email.rpartition("@")
        email = f"{local.split('+', 1)[0] or local}@{domain}"
    return email


def normalize_match(kind: str | None, value: object, *, fold_plus_addressing: bool = False) -> str:
    text = str(value)
    if kind == "email":
        return normalize_email(text, fold_plus_addressing=fold_plus_addressing)
    if kind == "lower":
        return text.strip().lower()
    if kind == "strip":
        return text.strip()
    if kind == "phone":
        from core.mapping.transforms import to_e164

        return to_e164(text, region=None)
    return _WHITESPACE.sub(" ", text).strip() if isinstance(value, str) else text
