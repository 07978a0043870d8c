"""The generic `hmac` scheme, for senders that sign with a plain HMAC in one header.

Configured entirely by options: `header` (required), `algorithm` sha1|sha256|sha512,
`encoding` hex|base64, `prefix` (e.g. "sha256=", stripped before comparing; a value without
it is malformed), and optionally `timestamp_header`: then the signed payload is
timestamp + `timestamp_separator` + body, the timestamp is unix seconds or milliseconds
(values above 10^11 are milliseconds) and `tolerance_seconds` applies.
Pattern references: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
(body only) and https://docs.stripe.com/webhooks#verify-manually (timestamp + "." + body).
The secret is used as-is (its UTF-8 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.signatures._common import (
    ALGORITHMS,
    any_match,
    decode_all,
    encode,
    mac,
    mismatch,
    parse_int,
    require,
    require_secrets,
    unix_seconds,
)
from core.signatures.base import SignatureError, SignedRequest, VerifyOptions, check_window


def _checked(options: VerifyOptions) -> str:
    if not options.header:
        raise SignatureError("invalid", "the hmac scheme needs `header` (the signature header)")
    if options.algorithm not in ALGORITHMS:
        raise SignatureError(
            "invalid",
            f"unsupported algorithm {options.algorithm!r}; "
            f"expected one of {', '.join(sorted(ALGORITHMS))}",
        )
    if options.encoding not in ("hex", "base64"):
        raise SignatureError(
            "invalid", f"unsupported encoding {options.encoding!r}; expected hex or base64"
        )
    return options.header


def _payload(options: VerifyOptions, stamp: str | None, body: bytes) -> bytes:
    if stamp is None:
        return body
    return (stamp + options.timestamp_separator).encode() + body


class HmacScheme:
    name = "hmac"
    #: The header is configured per source: the hub redacts `options.header` as well.
    signature_headers: tuple[str, ...] = ()
    signs_url: bool = False

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        name = _checked(options)
        secrets = require_secrets(secrets)
        value = require(request.headers, name)
        stamp = None
        if options.timestamp_header:
            stamp = require(request.headers, options.timestamp_header)
            seconds = unix_seconds(parse_int(stamp, options.timestamp_header))
        if not value.startswith(options.prefix):
            raise SignatureError(
                "invalid", f"{name} is malformed: expected it to start with {options.prefix!r}"
            )
        received = decode_all([value[len(options.prefix) :]], options.encoding, name)
        payload = _payload(options, stamp, request.body)
        expected = [mac(s.encode(), payload, options.algorithm) for s in secrets]
        if not any_match(received, expected):
            raise mismatch(name, secrets)
        if options.timestamp_header:
            check_window(seconds, now, options.tolerance_seconds, options.timestamp_header)

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
        name = _checked(options)
        headers: dict[str, str] = {}
        stamp = None
        if options.timestamp_header:
            stamp = str(int(now))
            headers[options.timestamp_header] = stamp
        digest = mac(secret.encode(), _payload(options, stamp, body), options.algorithm)
        headers[name] = options.prefix + encode(digest, options.encoding)
        return headers
