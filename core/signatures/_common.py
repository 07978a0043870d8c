"""Small pieces the scheme modules share: header lookup, digests, decoding, timestamp parsing.

Nothing here knows a vendor; every error it raises names only header names and formats,
never a secret or an expected signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from core.signatures.base import (
    SignatureError,
    SignedRequest,
    VerifyOptions,
    check_window,
    constant_time_in,
)

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}

#: Unix timestamps above this are taken to be milliseconds (10^11 s is the year 5138).
MILLISECONDS_THRESHOLD = 10**11


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value, looked up case-insensitively; None when absent or blank."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if key.lower() == wanted:
                value = candidate
                break
    if value is None or not value.strip():
        return None
    return value.strip()


def require(headers: Mapping[str, str], name: str) -> str:
    """The header's value, or SignatureError("missing")."""
    value = header(headers, name)
    if value is None:
        raise SignatureError("missing", f"the {name} header is missing")
    return value


def require_secrets(secrets: Sequence[str]) -> list[str]:
    """The non-empty secrets (an empty one would let anyone sign); none at all is "invalid"."""
    usable = [s for s in secrets if s]
    if not usable:
        raise SignatureError("invalid", "no signing secret is configured for this source")
    return usable


def mac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    try:
        digestmod = ALGORITHMS[algorithm]
    except KeyError:
        raise SignatureError(
            "invalid",
            f"unsupported algorithm {algorithm!r}; expected one of {', '.join(sorted(ALGORITHMS))}",
        ) from None
    return hmac.new(key, message, digestmod).digest()


def encode(digest: bytes, encoding: str) -> str:
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    raise SignatureError("invalid", f"unsupported encoding {encoding!r}; expected hex or base64")


def decode(value: str, encoding: str) -> bytes | None:
    """The raw bytes of a hex or base64 signature; None when it is not well formed."""
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        if encoding == "base64":
            return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    raise SignatureError("invalid", f"unsupported encoding {encoding!r}; expected hex or base64")


def decode_all(values: Iterable[str], encoding: str, what: str) -> list[bytes]:
    """Decode each candidate signature, skipping malformed ones; none usable is "invalid"."""
    decoded = [d for d in (decode(v, encoding) for v in values) if d is not None]
    if not decoded:
        raise SignatureError("invalid", f"{what} is malformed: the signature is not {encoding}")
    return decoded


def any_match(candidates: Iterable[bytes], expected: Sequence[bytes]) -> bool:
    """True if any received signature equals any expected one; every pair is compared."""
    found = False
    for candidate in candidates:
        found |= constant_time_in(candidate, expected)
    return found


def mismatch(what: str, secrets: Sequence[str]) -> SignatureError:
    count = len(secrets)
    which = "the configured secret" if count == 1 else f"any of the {count} configured secrets"
    return SignatureError(
        "invalid",
        f"{what} does not match: the request was not signed with {which}, "
        f"or its body (or signed metadata) changed in transit",
    )


def parse_int(value: str, what: str) -> int:
    text = value.strip()
    if not text.isdigit():
        raise SignatureError("invalid", f"{what} is malformed: expected an integer unix timestamp")
    return int(text)


def unix_seconds(value: int) -> float:
    """Seconds since the epoch from a timestamp in seconds or milliseconds."""
    return value / 1000 if value > MILLISECONDS_THRESHOLD else float(value)


def parse_pairs(value: str, what: str) -> tuple[str, list[str]]:
    """`t=...,v1=...[,v1=...]` -> (t, [v1, ...]); other keys (e.g. Stripe's v0) are ignored."""
    timestamp: str | None = None
    v1: list[str] = []
    for element in value.split(","):
        key, sep, item = element.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = item.strip()
        elif key == "v1":
            v1.append(item.strip())
    if timestamp is None:
        raise SignatureError("invalid", f"{what} is malformed: it has no t=<timestamp> element")
    if not v1:
        raise SignatureError("invalid", f"{what} is malformed: it has no v1=<signature> element")
    return timestamp, v1


class BodyHmacScheme:
    """A vendor that signs only the raw body: `{header}: {prefix}{encode(HMAC(secret, body))}`.

    `extra_signers` are further headers the vendor sends alongside (e.g. GitHub's legacy
    SHA-1 header): (header, prefix, algorithm, encoding). They are produced by sign() and
    redacted, but only `header` is verified.
    """

    def __init__(
        self,
        name: str,
        header: str,
        prefix: str,
        algorithm: str,
        encoding: str,
        extra_signers: tuple[tuple[str, str, str, str], ...] = (),
    ) -> None:
        self.name = name
        self.header = header
        self.prefix = prefix
        self.algorithm = algorithm
        self.encoding = encoding
        self.extra_signers = extra_signers
        self.signature_headers: tuple[str, ...] = (header, *(h for h, *_ in extra_signers))
        self.signs_url = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        value = require(request.headers, self.header)
        if not value.startswith(self.prefix):
            raise SignatureError(
                "invalid", f"{self.header} is malformed: expected it to start with {self.prefix!r}"
            )
        received = decode_all([value[len(self.prefix) :]], self.encoding, self.header)
        expected = [mac(s.encode(), request.body, self.algorithm) for s in secrets]
        if not any_match(received, expected):
            raise mismatch(self.header, secrets)

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
        signers = ((self.header, self.prefix, self.algorithm, self.encoding), *self.extra_signers)
        return {
            name: prefix + encode(mac(secret.encode(), body, algorithm), encoding)
            for name, prefix, algorithm, encoding in signers
        }


class TimestampV1Scheme:
    """`{header}: t=<unix s>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>[,v1=...]` (Stripe's
    format, which Calendly copied). Any v1 matching any secret passes; other keys are ignored.
    """

    def __init__(self, name: str, header: str) -> None:
        self.name = name
        self.header = header
        self.signature_headers: tuple[str, ...] = (header,)
        self.signs_url = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        t, v1 = parse_pairs(require(request.headers, self.header), self.header)
        timestamp = parse_int(t, f"{self.header} t=")
        received = decode_all(v1, "hex", f"{self.header} v1=")
        payload = t.encode() + b"." + request.body
        if not any_match(received, [mac(s.encode(), payload) for s in secrets]):
            raise mismatch(self.header, secrets)
        check_window(timestamp, now, options.tolerance_seconds, f"the {self.header} timestamp (t=)")

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
        t = str(int(now))
        signature = encode(mac(secret.encode(), t.encode() + b"." + body), "hex")
        return {self.header: f"t={t},v1={signature}"}


__all__ = [
    "BodyHmacScheme",
    "TimestampV1Scheme",
    "any_match",
    "decode",
    "decode_all",
    "encode",
    "header",
    "mac",
    "mismatch",
    "parse_int",
    "parse_pairs",
    "require",
    "require_secrets",
    "unix_seconds",
]
