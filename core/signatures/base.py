"""What every webhook signature scheme shares: the request as signed, the error, the interface.

Schemes are pure functions of (request, secrets, options, now): no I/O, no Flask. Each also
knows how to *sign*, which the test suite, the benchmark and `crmhub send-test` use to produce
requests exactly as the vendor would.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.errors import CrmhubError

Reason = Literal["missing", "invalid", "stale"]

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(CrmhubError):
    """The request is not proven to come from the sender.

    `reason` is one of missing (no signature header), invalid (does not match any secret,
    or malformed), stale (signed timestamp outside the replay window). `detail` is safe to
    return to the caller: it never contains a secret or the expected signature.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


class CaseInsensitiveHeaders(Mapping[str, str]):
    """A read-only header mapping with case-insensitive lookup (werkzeug's Headers also fits)."""

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = headers.items() if isinstance(headers, Mapping) else headers
        self._items = {k.lower(): (k, v) for k, v in items}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request a signature can cover.

    `url` is the full URL the sender signed (scheme, host, path, query): the source's
    `public_url` when the hub runs behind a proxy, else the URL the request arrived at.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class VerifyOptions:
    """Scheme options from the source's `verify:` block (all optional but `scheme`)."""

    scheme: str
    version: str | None = None  # hubspot: v1 | v2 | v3 (default v3)
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    # generic `hmac` scheme
    header: str | None = None
    algorithm: str = "sha256"  # sha1 | sha256 | sha512
    encoding: str = "hex"  # hex | base64
    prefix: str = ""  # e.g. "sha256="
    timestamp_header: str | None = None  # when set: signed payload is "{ts}{sep}{body}"
    timestamp_separator: str = "."
    extra: Mapping[str, Any] = field(default_factory=dict)


class Scheme(Protocol):
    """One vendor's signature scheme."""

    name: str
    #: Headers that carry signature material; redacted when the event's headers are stored.
    signature_headers: tuple[str, ...]
    #: Whether the signature covers the request URL (only then does the receiver build it).
    signs_url: bool

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        """Return if any secret verifies the request; raise SignatureError otherwise."""

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
        """Headers a genuine sender would attach to this body at time `now`."""


def constant_time_in(candidate: bytes | str, expected: Iterable[bytes | str]) -> bool:
    """True if `candidate` equals any of `expected`, comparing each in constant time."""
    cand = candidate.encode() if isinstance(candidate, str) else candidate
    found = False
    for value in expected:
        value_b = value.encode() if isinstance(value, str) else value
        # no short-circuit: every secret is compared, so timing does not tell which matched
        found |= hmac.compare_digest(cand, value_b)
    return found


def check_window(timestamp: float, now: float, tolerance: int, what: str) -> None:
    """Replay protection: the signed timestamp must be within `tolerance` seconds of now."""
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "stale",
            f"{what} is {int(abs(now - timestamp))} s away from the hub's clock; "
            f"the window is {tolerance} s (resend, or check the sender's clock)",
        )
