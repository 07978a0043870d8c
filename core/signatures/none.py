"""The `none` scheme: no signature at all; every request verifies.

For sources that cannot sign (protect them another way: a secret URL path, a private network).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.signatures.base import SignedRequest, VerifyOptions


class NoneScheme:
    name = "none"
    signature_headers: tuple[str, ...] = ()
    signs_url: bool = False

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        return None

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
        return {}
