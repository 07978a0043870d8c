"""Standard Webhooks, and Svix (the same scheme under `svix-` header names).

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
Svix: https://docs.svix.com/receiving/verifying-payloads/how-manual
- Headers: webhook-id, webhook-timestamp (integer unix seconds), webhook-signature: a space
  delimited list of "<version>,<base64>"; only "v1" (HMAC-SHA256) entries are checked, others
  (e.g. "v1a" asymmetric) are skipped, so rotation lists verify if any v1 entry matches.
- Signed content: "{id}.{timestamp}.{body}".
- Secret: "whsec_" + base64 of the key; the key is the base64-decoded part (the reference
  libraries accept it without the prefix too).
- The spec asks for "some allowable tolerance"; the reference libraries use 5 minutes both
  ways, which is `tolerance_seconds` by default.
Svix white-labels its headers to `webhook-` for some customers, so the svix scheme reads
`svix-*` first and falls back to `webhook-*`, as the Svix libraries do.
"""

from __future__ import annotations

import base64
import binascii
import secrets as secrets_module
from collections.abc import Mapping, Sequence

from core.signatures._common import (
    any_match,
    decode,
    encode,
    header,
    mac,
    mismatch,
    parse_int,
    require_secrets,
)
from core.signatures.base import SignatureError, SignedRequest, VerifyOptions, check_window

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes | None:
    """The HMAC key of a "whsec_<base64>" secret (prefix optional); None if not base64."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None
    return key or None


class StandardWebhooksScheme:
    def __init__(
        self, name: str = "standard_webhooks", prefixes: tuple[str, ...] = ("webhook-",)
    ) -> None:
        self.name = name
        self.prefixes = prefixes
        self.signature_headers: tuple[str, ...] = tuple(f"{p}signature" for p in prefixes)
        self.signs_url = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _get(self, headers: Mapping[str, str], field: str) -> tuple[str, str]:
        for prefix in self.prefixes:
            value = header(headers, prefix + field)
            if value is not None:
                return prefix + field, value
        raise SignatureError("missing", f"the {self.prefixes[0]}{field} header is missing")

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        sig_name, signatures = self._get(request.headers, "signature")
        _, msg_id = self._get(request.headers, "id")
        ts_name, stamp = self._get(request.headers, "timestamp")
        timestamp = parse_int(stamp, ts_name)
        entries = [e.partition(",") for e in signatures.split()]
        v1 = [sig for version, sep, sig in entries if sep and version == "v1"]
        if not v1:
            raise SignatureError(
                "invalid", f'{sig_name} is malformed: it has no "v1,<base64>" entry'
            )
        received = [d for d in (decode(s, "base64") for s in v1) if d is not None]
        if not received:
            raise SignatureError("invalid", f"{sig_name} is malformed: no v1 entry is base64")
        keys = [k for k in (secret_key(s) for s in secrets) if k is not None]
        if not keys:
            raise SignatureError(
                "invalid", "no configured secret is a Standard Webhooks key (whsec_<base64>)"
            )
        content = f"{msg_id}.{stamp}.".encode() + request.body
        if not any_match(received, [mac(k, content) for k in keys]):
            raise mismatch(sig_name, secrets)
        check_window(timestamp, now, options.tolerance_seconds, ts_name)

    def sign(
        self,
        *,
        body: bytes,
        secret: str,
        options: VerifyOptions,
        now: float,
        method: str = "POST",
        url: str = "",
    ) -> dict[str, str]:
        key = secret_key(secret)
        if key is None:
            raise SignatureError(
                "invalid", "the secret is not a Standard Webhooks key (whsec_<base64>)"
            )
        msg_id = str(options.extra.get("message_id") or f"msg_{secrets_module.token_hex(12)}")
        stamp = str(int(now))
        signature = encode(mac(key, f"{msg_id}.{stamp}.".encode() + body), "base64")
        prefix = self.prefixes[0]
        return {
            f"{prefix}id": msg_id,
            f"{prefix}timestamp": stamp,
            f"{prefix}signature": f"v1,{signature}",
        }


class SvixScheme(StandardWebhooksScheme):
    def __init__(self) -> None:
        super().__init__("svix", ("svix-", "webhook-"))
