"""Intercom: `X-Hub-Signature: sha1=<hex HMAC-SHA1(app client_secret, raw JSON body)>`.

Doc: https://developers.intercom.com/docs/references/2.13/webhooks/webhook-models ("Signed
notifications": "computed by creating a signature using the body of the JSON request and your
app's client_secret value ... the hexadecimal (40-byte) representation of a SHA-1 signature
computed using the HMAC algorithm as defined in RFC2104"). The legacy v1.0 reference
(https://developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications)
keyed it with a per-subscription `hub_secret` instead: configure that value as the secret
for such subscriptions. No timestamp is signed.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class IntercomScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__("intercom", "X-Hub-Signature", "sha1=", "sha1", "hex")
