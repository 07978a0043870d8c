"""DocuSign Connect (HMAC security): `X-DocuSign-Signature-1` ... `X-DocuSign-Signature-N`, each
<base64 HMAC-SHA256(one Connect HMAC key, raw body)>.

Docs: https://developers.docusign.com/platform/webhooks/connect/hmac and
https://developers.docusign.com/platform/webhooks/connect/validate ("Extract the text of the
plain text JSON payload as an array of bytes. The entire body of the POST request is used,
including line endings. Compute a SHA256 HMAC hash for the array of bytes. Base64-encode the
hash." ... "There will be one x-docusign-signature header value for each HMAC key"). The key
is the Connect secret as DocuSign shows it, used as-is (its UTF-8 bytes, as the doc's C#
`Encoding.UTF8.GetBytes(secret)`).

An account may have several HMAC keys active (rotation): DocuSign then sends one numbered
header per key, and the request is genuine when any header matches any configured secret.
DocuSign also sends `X-Authorization-Digest: HMACSHA256`, which names the algorithm and is
informational here (it is the only one).

Replay and dedupe: no timestamp is signed, so there is no replay window. A Connect message is
retried unchanged but for `retryCount`, so a source dedupes on the envelope, its status and
the message's generation time (`event_id: [data.envelopeId, data.envelopeSummary.status,
generatedDateTime]`, examples/recipes/esignature-docusign.yaml): a retry is a duplicate, the
envelope's next status is a new event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.signatures._common import any_match, decode, encode, mac, mismatch, require_secrets
from core.signatures.base import SignatureError, SignedRequest, VerifyOptions

HEADER_PREFIX = "X-DocuSign-Signature-"
DIGEST_HEADER = "X-Authorization-Digest"
#: DocuSign lets an account hold up to 100 Connect HMAC keys, one header each
MAX_KEYS = 100
_NUMBERED = re.compile(r"^x-docusign-signature-([1-9][0-9]{0,2})$", re.IGNORECASE)


class DocuSignScheme:
    name = "docusign"
    signature_headers: tuple[str, ...] = tuple(
        f"{HEADER_PREFIX}{n}" for n in range(1, MAX_KEYS + 1)
    )
    signs_url: bool = False

    def verify(
        self, request: SignedRequest, secrets: Sequence[str], options: VerifyOptions, now: float
    ) -> None:
        secrets = require_secrets(secrets)
        values = [
            value.strip()
            for name, value in request.headers.items()
            if _NUMBERED.match(name) and value and value.strip()
        ]
        if not values:
            raise SignatureError(
                "missing", f"no {HEADER_PREFIX}1 (or -2 ... -{MAX_KEYS}) header is present"
            )
        received = [d for d in (decode(v, "base64") for v in values) if d is not None]
        if not received:
            raise SignatureError(
                "invalid", f"{HEADER_PREFIX}N is malformed: no signature header is base64"
            )
        expected = [mac(s.encode(), request.body) for s in secrets]
        if not any_match(received, expected):
            raise mismatch(f"{HEADER_PREFIX}N (any of the {len(values)} sent)", secrets)

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
        return {
            f"{HEADER_PREFIX}1": encode(mac(secret.encode(), body), "base64"),
            DIGEST_HEADER: "HMACSHA256",
        }
