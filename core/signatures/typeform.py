"""Typeform: `Typeform-Signature: sha256=<base64 HMAC-SHA256(webhook secret, raw body)>`.

Doc: https://www.typeform.com/developers/webhooks/secure-your-webhooks/ ("create a hash
(using secret as a key) of the entire received payload as binary, encode the binary hash in
base64 format, add prefix sha256="). No timestamp is signed.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class TypeformScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__("typeform", "Typeform-Signature", "sha256=", "sha256", "base64")
