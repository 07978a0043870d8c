"""Helpers for building signed webhook requests and hub configs in tests, and for recording a
webhook as the receiver would."""

from __future__ import annotations

import json
import time
from typing import Any

from core.config import Config
from core.intake import build_events
from core.ledger import Ledger, NewEvent
from core.signatures import VerifyOptions, get_scheme

STRIPE_SECRET = "whsec_test_stripe_0123456789"
HUBSPOT_SECRET = "hubspot-client-secret-abcdef"
GITHUB_SECRET = "github-secret"
FORMS_SECRET = "forms-secret"

#: Stripe customers to a generic REST CRM with a bearer token: the configuration unit tests
#: start from (tests/unit/test_config.py counts on its line numbers)
CRM_CONFIG = """\
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  crm:
    connector: http
    base_url: https://crm.example.com/api/
    auth: {type: bearer, token_env: CRM_TOKEN}
mappings:
  customer-to-contact:
    source: stripe
    when: {event_type: [customer.created, customer.updated]}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, required: true}
      name: data.object.name
"""
CRM_ENV = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "CRM_TOKEN": "pat-x"}

#: Stripe customers to the demo CRM (examples/demo_target.py) at {target}: what the tests that
#: run the hub's processes configure (a str.format template)
DEMO_CRM_CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
    max_body_bytes: 4096
connections:
  crm:
    connector: http
    base_url: {target}
mappings:
  customers:
    source: stripe
    when: {{event_type: [customer.created, customer.updated]}}
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email]}}
      name: data.object.name
      phone: {{from: data.object.phone, transform: [{{e164: {{region: US}}}}]}}
"""

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


def stripe_event(
    event_id: str = "evt_1",
    type_: str = "customer.created",
    email: str = "ada@example.com",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": 1_700_000_000,
        "data": {
            "object": {
                "id": "cus_1",
                "object": "customer",
                "email": email,
                "name": "Ada Lovelace",
                **extra,
            }
        },
    }


def signed(
    scheme: str,
    body: bytes | dict[str, Any] | list[Any],
    secret: str,
    *,
    now: float | None = None,
    url: str = "",
    method: str = "POST",
    **options: Any,
) -> tuple[bytes, dict[str, str]]:
    """The body and the headers a genuine sender attaches."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = get_scheme(scheme).sign(
        body=raw,
        secret=secret,
        options=VerifyOptions(scheme=scheme, **options),
        now=time.time() if now is None else now,
        method=method,
        url=url,
    )
    return raw, {"Content-Type": "application/json", **headers}


def accept_webhook(
    config: Config,
    ledger: Ledger,
    body: dict[str, Any],
    *,
    source: str = "stripe",
    now: float | None = None,
) -> list[NewEvent]:
    """Accept `body` as the receiver does once `source`'s signature checks out: its events
    with a delivery per mapping that takes them, stored and published in one step."""
    now = time.time() if now is None else now
    events = build_events(
        config.sources[source], config.mappings_for(source), {}, {}, json.dumps(body), body, now
    )
    ledger.accept(events, now)
    return events
