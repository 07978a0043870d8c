"""Calendly: `Calendly-Webhook-Signature: t=<unix s>,v1=<hex HMAC-SHA256(key, "{t}.{body}")>`.

Doc: https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures
The key is the webhook signing key used as-is. The doc's replay protection rejects a t older
than its tolerance zone; its example uses 3 minutes, this hub uses the source's
`tolerance_seconds` (set it to 180 to match the example).
"""

from __future__ import annotations

from core.signatures._common import TimestampV1Scheme


class CalendlyScheme(TimestampV1Scheme):
    def __init__(self) -> None:
        super().__init__("calendly", "Calendly-Webhook-Signature")
