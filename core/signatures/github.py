"""GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.

Doc: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
GitHub also sends the legacy `X-Hub-Signature: sha1=<hex HMAC-SHA1>` when a secret is set;
sign() produces both (as GitHub does), verify() trusts only the SHA-256 one, as the doc asks.
No timestamp is signed, so there is no replay window.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class GitHubScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__(
            "github",
            "X-Hub-Signature-256",
            "sha256=",
            "sha256",
            "hex",
            extra_signers=(("X-Hub-Signature", "sha1=", "sha1", "hex"),),
        )
