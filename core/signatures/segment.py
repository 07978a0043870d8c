"""Segment (Webhooks destination, classic and Actions): `X-Signature: <hex HMAC-SHA1(shared
secret, raw body)>`.

Docs: https://www.twilio.com/docs/segment/connections/destinations/catalog/webhooks and
https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-webhook ("If you
provide a shared secret, Segment will sign requests with an HMAC in the "X-Signature" request
header. The HMAC is a hex-encoded SHA1 hash generated using this shared secret and the request
body."). The shared secret is used as-is.

Replay and dedupe: no timestamp is signed, so there is no replay window; every Segment
message carries a `messageId` that stays the same when Segment retries it
(https://www.twilio.com/docs/segment/connections/spec/common: "Automatically collected by
Segment, a unique identifier for each message that lets you find an individual message
across the API"), so a source dedupes on `event_id: messageId`.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class SegmentScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__("segment", "X-Signature", "", "sha1", "hex")
