"""Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(client secret, raw body)>`.

Doc: https://shopify.dev/docs/apps/build/webhooks/subscribe/https (section "Verify the
webhook"). The key is the app's client secret used as-is; no timestamp is signed.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class ShopifyScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__("shopify", "X-Shopify-Hmac-Sha256", "", "sha256", "base64")
