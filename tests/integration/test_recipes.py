"""Every recipe (examples/recipes/) end to end, on one running hub: `crmhub serve` (gunicorn,
a Celery worker, beat, the real Redis), the fake HubSpot and the fake QuickBooks as servers
over loopback. For each recipe the hub is switched to the recipe's own file (`crmhub reload`,
its fakes' addresses substituted for the local defaults it names), then the vendor's
documented payloads (tests/fixtures/recipes/, each naming the page it follows) are signed with
the vendor's scheme and posted to the receiver, and each ends as the expected fields on the
fake CRM's record. A wrong signature is refused (401) and records nothing; a retried delivery
is a duplicate.

The fake HubSpot is started with the custom properties each recipe's header tells a user to
create (read from the headers, so a header missing one fails here).
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import delete_prefix
from hubtest import signed
from processes import FakeHubSpot, FakeServer, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "examples" / "recipes"
FIXTURES = ROOT / "tests" / "fixtures" / "recipes"
PAT = "pat-na1-recipes-00000000-0000-0000-0000-000000000000"
SECRETS = {
    "ZENDESK_WEBHOOK_SECRET": "zendesk-signing-secret-recipes",
    "QBO_VERIFIER_TOKEN": "qbo-verifier-token-recipes",
    "DOCUSIGN_CONNECT_KEY": "docusign-connect-key-recipes=",
    "STRIPE_WEBHOOK_SECRET": "whsec_recipes_stripe_secret",
    "TYPEFORM_WEBHOOK_SECRET": "typeform-secret-recipes",
    "SEGMENT_SHARED_SECRET": "segment-shared-secret-recipes",
}
QBO = {
    "QBO_CLIENT_ID": "qbo-client-recipes",
    "QBO_CLIENT_SECRET": "qbo-client-secret-recipes",
    "QBO_REFRESH_TOKEN": "qbo-refresh-recipes",
}


class FakeQuickBooks(FakeServer):
    """connectors/fakes/quickbooks/: QuickBooks Online's reads and Intuit's token endpoint."""

    connector = "quickbooks"
    object_param = "entity"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def custom_properties() -> list[str]:
    """Every `--custom-property` the recipes' headers ask for, once each."""
    found: dict[str, None] = {}
    for path in sorted(RECIPES.glob("*.yaml")):
        for spec in re.findall(r"--custom-property (\S+)", path.read_text()):
            found[spec] = None
    return list(found)


class Running:
    def __init__(self, hub: Hub, hubspot: FakeHubSpot, qbo: FakeQuickBooks, config: Path) -> None:
        self.hub = hub
        self.hubspot = hubspot
        self.qbo = qbo
        self.config = config

    def use(self, recipe: str) -> None:
        """The hub runs on the recipe's own file from now on (`crmhub reload`)."""
        text = (RECIPES / f"{recipe}.yaml").read_text()
        text = text.replace("http://127.0.0.1:8901", self.hubspot.url)
        text = text.replace("http://127.0.0.1:8930", self.qbo.url)
        self.config.write_text(text)
        self.hub.cli("reload")

    def post(
        self, source: str, scheme: str, body: dict[str, Any], secret: str | None = None
    ) -> httpx.Response:
        raw, headers = signed(scheme, body, secret or self.secret(source))
        return self.hub.http.post(f"/webhooks/{source}", content=raw, headers=headers)

    def send(self, source: str, scheme: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(source, scheme, body)
        assert response.status_code == 202, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def secret(self, source: str) -> str:
        return {
            "zendesk": SECRETS["ZENDESK_WEBHOOK_SECRET"],
            "quickbooks": SECRETS["QBO_VERIFIER_TOKEN"],
            "docusign": SECRETS["DOCUSIGN_CONNECT_KEY"],
            "stripe": SECRETS["STRIPE_WEBHOOK_SECRET"],
            "typeform": SECRETS["TYPEFORM_WEBHOOK_SECRET"],
            "segment": SECRETS["SEGMENT_SHARED_SECRET"],
        }[source]

    def refused(self, source: str, scheme: str, body: dict[str, Any]) -> None:
        """Signed with another secret: 401 (and so nothing recorded: the body's own first
        send, right after, is accepted as new, 202)."""
        response = self.post(source, scheme, body, secret="not-the-" + self.secret(source))
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "signature_invalid"

    def record(self, obj: str, key: str, value: str, **expected: str) -> dict[str, str]:
        """The fake HubSpot's record of `obj` whose `key` is `value`, once it has `expected`."""
        found: dict[str, dict[str, str]] = {}

        def arrived() -> bool:
            for row in self.hubspot.records(obj):
                properties = row.get("properties") or {}
                if properties.get(key) == value:
                    found["record"] = properties
                    return all(properties.get(k) == v for k, v in expected.items())
            return False

        try:
            wait_until(arrived, timeout=30, message=f"{obj} {key}={value} with {expected}")
        except AssertionError:
            raise AssertionError(
                f"{obj} {key}={value}: {found.get('record')}\n{self.hub.output()[-3000:]}"
            ) from None
        return found["record"]

    def settled(self) -> None:
        """Every delivery of every recipe delivered: none waiting, none dead."""

        def quiet() -> bool:
            rows = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
            return all(
                r["counts"]["pending"] + r["counts"]["in_flight"] + r["counts"]["scheduled"] == 0
                for r in rows
            )

        wait_until(quiet, timeout=30, interval=1.0, message="every delivery done")
        dead = json.loads(self.hub.cli("dlq", "list", "--json").stdout)
        assert dead["total"] == 0, dead


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, real_redis_url: str) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("recipes")
    properties = [arg for spec in custom_properties() for arg in ("--custom-property", spec)]
    hubspot = FakeHubSpot("--private-app-token", PAT, *properties)
    qbo = FakeQuickBooks(
        "--client-id",
        QBO["QBO_CLIENT_ID"],
        "--client-secret",
        QBO["QBO_CLIENT_SECRET"],
        "--refresh-token",
        QBO["QBO_REFRESH_TOKEN"],
        "--rotate-refresh-tokens",
    )
    prefix = f"crmhub-recipes-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    text = (RECIPES / "helpdesk-zendesk.yaml").read_text()
    config.write_text(text.replace("http://127.0.0.1:8901", hubspot.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "HUBSPOT_TOKEN": PAT,
            **SECRETS,
            **QBO,
        },
        tmp,
    )
    try:
        yield Running(hub, hubspot, qbo, config)
    finally:
        hub.stop()
        hubspot.stop()
        qbo.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


@pytest.fixture
def hub(running: Running) -> Iterator[Running]:
    yield running
    assert running.hubspot.violations() == [], "a request HubSpot would refuse"


def test_help_desk_zendesk_tickets_and_csat_on_the_contact_and_company(hub: Running) -> None:
    hub.use("helpdesk-zendesk")
    bodies = fixture("zendesk")["bodies"]
    hub.refused("zendesk", "zendesk", bodies["ticket-updated"])
    hub.send("zendesk", "zendesk", bodies["ticket-updated"])
    hub.record("contacts", "email", "jane.doe@example.com", zendesk_last_ticket_status="open")
    hub.send("zendesk", "zendesk", bodies["ticket-solved-rated"])
    contact = hub.record(
        "contacts",
        "email",
        "jane.doe@example.com",
        zendesk_last_ticket_status="solved",
        zendesk_csat="good",
    )
    assert contact["firstname"] == "Jane" and contact["lastname"] == "Doe"
    assert contact["zendesk_last_ticket_id"] == "35436"
    assert contact["zendesk_last_ticket_subject"] == "Printer on fire"
    company = hub.record(
        "companies", "zendesk_organization", "Acme Corp", zendesk_last_ticket_status="solved"
    )
    assert company["name"] == "Acme Corp"
    # Zendesk retrying the same delivery: a duplicate, nothing written again
    again = hub.post("zendesk", "zendesk", bodies["ticket-solved-rated"])
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_accounting_quickbooks_ids_fetched_into_invoice_payment_and_ar(hub: Running) -> None:
    hub.use("accounting-quickbooks")
    data = fixture("quickbooks")
    for entity, record in data["records"].items():
        hub.qbo.add(entity, **record)
    notification = data["bodies"]["notification"]
    hub.refused("quickbooks", "quickbooks", notification)
    answer = hub.send("quickbooks", "quickbooks", notification)
    assert answer["accepted"] == 3 and answer["deliveries"] == 3  # one event per entity
    company = hub.record(
        "companies",
        "quickbooks_customer_id",
        "24",
        last_invoice_number="1037",
        last_payment_amount="362.07",
        accounts_receivable="1250.5",
    )
    assert company["name"] == "Sonnenschein Family Store"
    assert company["last_invoice_status"] == "paid"
    assert company["last_invoice_total"] == "362.07"
    assert company["last_invoice_balance"] == "0"
    # Intuit retrying the notification: every entity a duplicate
    again = hub.post("quickbooks", "quickbooks", notification)
    assert again.status_code == 200 and again.json()["duplicates"] == 3
    # the invoice changes (partly unpaid again): a new event, the company follows
    hub.qbo.add("Invoice", **{**data["records"]["Invoice"], "Balance": 100.5})
    later = copy.deepcopy(notification)
    entities = later["eventNotifications"][0]["dataChangeEvent"]["entities"]
    # as Intuit stamps it: when it changed, now (a fetch made before it cannot serve it)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(time.time() + 1))
    entities[:] = [{**entities[0], "lastUpdated": now}]
    assert hub.send("quickbooks", "quickbooks", later)["accepted"] == 1
    hub.record(
        "companies",
        "quickbooks_customer_id",
        "24",
        last_invoice_status="open",
        last_invoice_balance="100.5",
    )


def test_e_signature_docusign_contract_status_and_dates_on_the_deal(hub: Running) -> None:
    hub.use("esignature-docusign")
    bodies = fixture("docusign")["bodies"]
    envelope = "93be49ab-4c1e-4f6e-9e8d-f752070d71ec"
    hub.refused("docusign", "docusign", bodies["envelope-sent"])
    hub.send("docusign", "docusign", bodies["envelope-sent"])
    hub.record("deals", "docusign_envelope_id", envelope, contract_status="sent")
    hub.send("docusign", "docusign", bodies["envelope-completed"])
    deal = hub.record("deals", "docusign_envelope_id", envelope, contract_status="completed")
    assert deal["dealname"] == "Please DocuSign: Acme Corp - Master Services Agreement"
    assert deal["contract_sent_at"].startswith("2026-11-20T19:44:13")
    assert deal["contract_signed_at"].startswith("2026-11-21T08:02:29")
    assert deal["contract_completed_at"].startswith("2026-11-21T08:02:30")
    # DocuSign retrying the message changes only retryCount: a duplicate
    retried = {**bodies["envelope-completed"], "retryCount": 1}
    again = hub.post("docusign", "docusign", retried)
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_billing_stripe_customer_subscription_and_invoice_state(hub: Running) -> None:
    hub.use("billing-stripe")
    bodies = fixture("stripe")["bodies"]
    hub.refused("stripe", "stripe", bodies["customer.created"])
    hub.send("stripe", "stripe", bodies["customer.created"])
    contact = hub.record(
        "contacts", "email", "ada@example.com", stripe_customer_id="cus_NffrFeUfNV2Hib"
    )
    assert contact["firstname"] == "Ada" and contact["lastname"] == "Lovelace"
    hub.send("stripe", "stripe", bodies["customer.subscription.created"])
    hub.send("stripe", "stripe", bodies["invoice.paid"])
    contact = hub.record(
        "contacts",
        "email",
        "ada@example.com",
        stripe_subscription_status="active",
        stripe_last_invoice_status="paid",
    )
    assert contact["stripe_price_id"] == "price_1MowQULkdIwHu7ixraBm864M"
    assert contact["stripe_cancel_at_period_end"] == "false"
    assert contact["stripe_last_invoice_amount_due"] == "1000"
    assert contact["stripe_current_period_end"].startswith("2026-12-18T")


def test_forms_typeform_lead_found_or_created_on_email(hub: Running) -> None:
    hub.use("forms-typeform")
    body = fixture("typeform")["bodies"]["form_response"]
    hub.refused("typeform", "typeform", body)
    # a contact a rep already made for this person, in other case, with a company of their own
    hub.hubspot.http.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "grace.hopper@navy.example", "company": "Navy (rep's)"}},
        headers={"Authorization": f"Bearer {PAT}"},
    ).raise_for_status()
    hub.send("typeform", "typeform", body)
    lead = hub.record("contacts", "email", "grace.hopper@navy.example", typeform_form_id="lT4Z3j")
    assert lead["firstname"] == "Grace" and lead["lastname"] == "Hopper"
    assert lead["company"] == "Navy (rep's)"  # owner: target, the rep's value stays
    assert lead["lifecyclestage"] == "lead"
    grace = [
        r
        for r in hub.hubspot.records("contacts")
        if (r.get("properties") or {}).get("email") == "grace.hopper@navy.example"
    ]
    assert len(grace) == 1  # found, not created twice


def test_product_analytics_segment_usage_and_activation(hub: Running) -> None:
    hub.use("product-analytics-segment")
    bodies = fixture("segment")["bodies"]
    hub.refused("segment", "segment", bodies["identify"])
    hub.send("segment", "segment", bodies["identify"])
    contact = hub.record("contacts", "email", "peter@example.com", segment_user_id="97980cfea0067")
    assert contact["plan"] == "premium" and contact["firstname"] == "Peter"
    hub.send("segment", "segment", bodies["track-activation"])
    hub.record(
        "contacts",
        "email",
        "peter@example.com",
        last_tracked_event="Project Created",
        activated_at="2026-11-21T09:01:02Z",
    )
    hub.send("segment", "segment", bodies["track-later"])
    contact = hub.record(
        "contacts", "email", "peter@example.com", last_seen_at="2026-11-22T11:00:00Z"
    )
    assert contact["activated_at"] == "2026-11-21T09:01:02Z"  # the first activation stays
    again = hub.post("segment", "segment", bodies["track-later"])
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_no_recipe_left_a_dead_letter_or_a_waiting_delivery(hub: Running) -> None:
    """Run last: across the recipes above, every delivery was delivered (none skipped into the
    dead-letter queue, none still retrying)."""
    hub.settled()
