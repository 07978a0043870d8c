"""QuickBooks Online: `intuit-signature: <base64 HMAC-SHA256(verifier token, raw body)>`.

Doc: https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/managing-webhooks-notifications
("Validating the notification": hash the notification payload with HMAC-SHA256 using the
app's webhooks verifier token as the key, then compare it with the `intuit-signature` header,
which is that hash base64-encoded). The verifier token is used as-is (its UTF-8 bytes).

Replay and dedupe: nothing time-bound is signed, so there is no replay window; a replayed or
retried notification is caught by deduplication. One notification carries several changed
entities (`eventNotifications[].dataChangeEvent.entities[]`, each `{name, id, operation,
lastUpdated}`): the source splits it into one event per entity
(`split: eventNotifications[].dataChangeEvent.entities[]`) and dedupes each on its realm,
entity name, id and `lastUpdated` (examples/recipes/accounting-quickbooks.yaml), so a retry
of the same change is a duplicate while a later change of the same invoice is a new event.
"""

from __future__ import annotations

from core.signatures._common import BodyHmacScheme


class QuickBooksScheme(BodyHmacScheme):
    def __init__(self) -> None:
        super().__init__("quickbooks", "intuit-signature", "", "sha256", "base64")
