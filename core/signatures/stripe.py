"""Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`.

Doc: https://docs.stripe.com/webhooks#verify-manually
- signed_payload = "{t}.{raw body}"; signature = hex HMAC-SHA256 keyed with the endpoint's
  signing secret used as-is (the whole "whsec_..." string; Stripe does not base64-decode it).
- Several v1 entries appear while a rolled secret is still active; any match passes.
- "To prevent downgrade attacks, ignore all schemes that aren't v1" (v0 is a test-mode decoy).
- Stripe's libraries default to a 300 s tolerance between t and now.
"""

from __future__ import annotations

from core.signatures._common import TimestampV1Scheme


class StripeScheme(TimestampV1Scheme):
    def __init__(self) -> None:
        super().__init__("stripe", "Stripe-Signature")
