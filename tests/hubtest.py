"""Helpers for building signed webhook requests and hub configs in tests."""

from __future__ import annotations

import json
import time
from typing import Any

from core.signatures import VerifyOptions, get_scheme

STRIPE_SECRET = "whsec_test_stripe_0123456789"
HUBSPOT_SECRET = "hubspot-client-secret-abcdef"
GITHUB_SECRET = "github-secret"
FORMS_SECRET = "forms-secret"

RECEIVER_CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: [STRIPE_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET_OLD]}
    event_id: id
    event_type: type
    occurred_at: created
  hubspot:
    verify: {scheme: hubspot, version: v3, secret_env: HUBSPOT_CLIENT_SECRET}
    public_url: https://hooks.example.com/webhooks/hubspot
    batch: true
    event_id: eventId
    event_type: subscriptionType
    occurred_at: occurredAt
  github:
    verify: {scheme: github, secret_env: GITHUB_SECRET}
    event_id: header:X-GitHub-Delivery
    event_type: header:X-GitHub-Event
  forms:
    verify: {scheme: hmac, secret_env: FORMS_SECRET, header: X-Signature, prefix: "sha256="}
    max_body_bytes: 2048
connections:
  crm:
    connector: http
    base_url: http://127.0.0.1:9/api
mappings:
  stripe-customer:
    source: stripe
    when: {event_type: [customer.created, customer.updated]}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email}
    fields: {email: data.object.email, name: data.object.name}
  stripe-customer-audit:
    source: stripe
    when: {event_type: customer.created}
    connection: crm
    object: audit
    match: {field: id, from: data.object.id}
    fields: {id: data.object.id}
  hubspot-contacts:
    source: hubspot
    when: {event_type: contact.propertyChange}
    connection: crm
    object: contacts
    match: {field: id, from: objectId}
    fields: {id: objectId}
"""

RECEIVER_ENV = {
    "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    "STRIPE_WEBHOOK_SECRET_OLD": "whsec_old_rotated_out",
    "HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
    "GITHUB_SECRET": GITHUB_SECRET,
    "FORMS_SECRET": FORMS_SECRET,
}


def stripe_event(event_id: str = "evt_1", type_: str = "customer.created",
                 email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": type_, "created": 1_700_000_000,
            "data": {"object": {"id": "cus_1", "object": "customer", "email": email,
                                "name": "Ada Lovelace", **extra}}}


def signed(scheme: str, body: bytes | dict[str, Any] | list[Any], secret: str, *,
           now: float | None = None, url: str = "", method: str = "POST",
           **options: Any) -> tuple[bytes, dict[str, str]]:
    """The body and the headers a genuine sender attaches."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = get_scheme(scheme).sign(
        body=raw, secret=secret, options=VerifyOptions(scheme=scheme, **options),
        now=time.time() if now is None else now, method=method, url=url)
    return raw, {"Content-Type": "application/json", **headers}
