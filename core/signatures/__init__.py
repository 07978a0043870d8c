"""Webhook signature schemes, one module each, and the explicit registry of their names."""

from __future__ import annotations

from core.signatures.base import (
    CaseInsensitiveHeaders,
    Scheme,
    SignatureError,
    SignedRequest,
    VerifyOptions,
)
from core.signatures.registry import SCHEMES, get_scheme

__all__ = [
    "SCHEMES",
    "CaseInsensitiveHeaders",
    "Scheme",
    "SignatureError",
    "SignedRequest",
    "VerifyOptions",
    "get_scheme",
]
