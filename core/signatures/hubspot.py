"""HubSpot request signatures v1, v2 and v3 (`options.version`, default v3).

Doc: https://developers.hubspot.com/docs/api/webhooks/validating-requests (legacy apps) and
https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation
- v1: X-HubSpot-Signature = hex SHA-256 of client_secret + body (a plain hash, not an HMAC).
- v2: X-HubSpot-Signature = hex SHA-256 of client_secret + method + URI + body; the URI must
  match the original request exactly (protocol, query order).
- v3: X-HubSpot-Signature-v3 = base64 HMAC-SHA256(client_secret, method + URI + body +
  timestamp), timestamp = X-HubSpot-Request-Timestamp (unix milliseconds) as sent. The doc
  says to reject a timestamp older than 5 minutes and, in the URI, to decode exactly these
  URL-encoded characters (no others, and a literal "?" stays): %3A : %2F / %3F ? %40 @ %21 !
  %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;
The URI is request.url (the source's public_url behind a proxy).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from core.signatures._common import (
    any_match,
    decode_all,
    encode,
    mac,
    mismatch,
    parse_int,
    require,
    require_secrets,
)
from core.signatures.base import SignatureError, SignedRequest, VerifyOptions, check_window

V1_V2_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"
V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"

_V3_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_V3_ENCODED = re.compile("%(" + "|".join(_V3_DECODED) + ")", re.IGNORECASE)


def v3_uri(url: str) -> str:
    """The URI as HubSpot signs it for v3: only the documented escapes decoded, in one pass."""
    return _V3_ENCODED.sub(lambda m: _V3_DECODED[m.group(1).upper()], url)


def _v1_v2_source(version: str, secret: str, method: str, url: str, body: bytes) -> bytes:
    if version == "v1":
        return secret.encode() + body
    return (secret + method + url).encode() + body


def _v3_source(method: str, url: str, body: bytes, stamp: str) -> bytes:
    return (method + v3_uri(url)).encode() + body + stamp.encode()


class HubSpotScheme:
    name = "hubspot"
    signature_headers: tuple[str, ...] = (V3_HEADER, V1_V2_HEADER)
    signs_url: bool = True

    @staticmethod
    def _version(options: VerifyOptions) -> str:
        version = options.version or "v3"
        if version not in ("v1", "v2", "v3"):
            raise SignatureError(
                "invalid", f"unknown HubSpot signature version {version!r}; expected v1, v2 or v3"
            )
        return version

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        version = self._version(options)
        method = request.method.upper()
        if version != "v3":
            received = decode_all([require(request.headers, V1_V2_HEADER)], "hex", V1_V2_HEADER)
            expected = [
                hashlib.sha256(
                    _v1_v2_source(version, s, method, request.url, request.body)
                ).digest()
                for s in secrets
            ]
            if not any_match(received, expected):
                raise mismatch(f"{V1_V2_HEADER} ({version})", secrets)
            return
        value = require(request.headers, V3_HEADER)
        stamp = require(request.headers, TIMESTAMP_HEADER)
        millis = parse_int(stamp, TIMESTAMP_HEADER)
        received = decode_all([value], "base64", V3_HEADER)
        source = _v3_source(method, request.url, request.body, stamp)
        if not any_match(received, [mac(s.encode(), source) for s in secrets]):
            raise mismatch(V3_HEADER, secrets)
        check_window(millis / 1000, now, options.tolerance_seconds, TIMESTAMP_HEADER)

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
        version = self._version(options)
        method = method.upper()
        if version != "v3":
            digest = hashlib.sha256(_v1_v2_source(version, secret, method, url, body)).digest()
            return {V1_V2_HEADER: digest.hex(), VERSION_HEADER: version}
        stamp = str(int(now * 1000))
        signature = encode(mac(secret.encode(), _v3_source(method, url, body, stamp)), "base64")
        return {V3_HEADER: signature, TIMESTAMP_HEADER: stamp}
