"""Zendesk: `X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(secret, TIMESTAMP + BODY))`.

Docs: https://developer.zendesk.com/documentation/webhooks/verifying/ and
https://developer.zendesk.com/documentation/webhooks/anatomy-of-a-webhook-request/
- TIMESTAMP is the X-Zendesk-Webhook-Signature-Timestamp header exactly as sent, concatenated
  with the raw body with no separator; it is ISO 8601 UTC, e.g. "2021-03-25T05:09:27Z"
  (a unix-seconds value is also accepted).
- The signing secret is used as-is (its base64 look is not decoded). Test deliveries sent
  before a webhook exists use the published static secret
  "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==".
- The body may be empty (GET/DELETE webhooks). Zendesk names no window; `tolerance_seconds`
  applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.signatures._common import (
    any_match,
    decode_all,
    encode,
    mac,
    mismatch,
    require,
    require_secrets,
)
from core.signatures.base import SignatureError, SignedRequest, VerifyOptions, check_window

HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"


def _seconds(value: str) -> float:
    if value.isdigit():
        return float(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SignatureError(
            "invalid",
            f"{TIMESTAMP_HEADER} is malformed: expected an ISO 8601 time such as "
            "2021-03-25T05:09:27Z",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class ZendeskScheme:
    name = "zendesk"
    signature_headers: tuple[str, ...] = (HEADER,)
    signs_url: bool = False

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        value = require(request.headers, HEADER)
        stamp = require(request.headers, TIMESTAMP_HEADER)
        seconds = _seconds(stamp)
        received = decode_all([value], "base64", HEADER)
        payload = stamp.encode() + request.body
        if not any_match(received, [mac(s.encode(), payload) for s in secrets]):
            raise mismatch(HEADER, secrets)
        check_window(seconds, now, options.tolerance_seconds, TIMESTAMP_HEADER)

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
        stamp = datetime.fromtimestamp(int(now), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = encode(mac(secret.encode(), stamp.encode() + body), "base64")
        return {HEADER: signature, TIMESTAMP_HEADER: stamp}
