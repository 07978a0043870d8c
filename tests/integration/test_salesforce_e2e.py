"""The textbook sync end to end (issue 13's proof): the real hub (`crmhub serve`: gunicorn,
a Celery worker, beat; a real Redis) receives HubSpot's signed v3 batched contact webhooks,
fetches each contact from the fake HubSpot and writes it to the fake Salesforce with its
Account, both fakes running as servers over loopback.

- 30 contacts of 12 companies, with propertyChange bursts and emails differing in case, end
  as exactly 30 Contacts and 12 Accounts, each Contact linked to its company's Account, a
  Title a rep edited never overwritten;
- an expired session is refreshed without loss;
- a revoked refresh token pauses the connection, holds its deliveries, alerts on-call once,
  and after re-authorising and `crmhub resume` delivers them in order;
- a REQUEST_LIMIT_EXCEEDED storm cools the connection down and never pauses it;
- a duplicate rule lands the event in the dead-letter queue with the rule's matches.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from hubtest import signed
from processes import CRMHUB, AlertSink, FakeHubSpot, FakeSalesforce, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

HS_SECRET = "hubspot-app-client-secret"
PAT = "pat-na1-e2e-00000000-0000-0000-0000-000000000000"
SF_ID, SF_SECRET, SF_REFRESH = "sf-client", "sf-client-secret", "sf-refresh-1"
COMPANIES = [f"Company {c:02d}" for c in range(12)]
_EVENT_IDS = itertools.count(1)

CONFIG = """
sources:
  hubspot:
    verify: {{scheme: hubspot, version: v3, secret_env: HUBSPOT_CLIENT_SECRET}}
    batch: true
    event_id: eventId
    event_type: subscriptionType
    occurred_at: occurredAt
connections:
  hubspot:
    connector: hubspot
    base_url: {hubspot}
    auth: {{type: bearer, token_env: HUBSPOT_TOKEN}}
  salesforce:
    connector: salesforce
    login_url: {salesforce}
    auth: {{type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
            refresh_token_env: SF_REFRESH_TOKEN}}
    api_version: "62.0"
    retry: {{base_seconds: 0.2, max_seconds: 2}}
    options: {{limit_probe_max_seconds: 1}}
mappings:
  hubspot-contact-to-salesforce:
    source: hubspot
    when: {{event_type: [contact.creation, contact.propertyChange]}}
    fetch: {{connection: hubspot, object: contacts, id: objectId,
             properties: [firstname, lastname, email, jobtitle, company], window_seconds: 10}}
    connection: salesforce
    object: Contact
    match: {{field: Email, from: fetched.properties.email, normalize: email}}
    fields:
      FirstName: fetched.properties.firstname
      LastName: {{from: fetched.properties.lastname, required: true}}
      Email: {{from: fetched.properties.email, transform: [email]}}
      Title: {{from: fetched.properties.jobtitle, owner: target}}
    related:
      AccountId: {{object: Account, match: {{field: Name, from: fetched.properties.company,
                   normalize: strip}}, fields: {{Name: fetched.properties.company}}}}
"""


class Running:
    def __init__(
        self, hub: Hub, hubspot: FakeHubSpot, salesforce: FakeSalesforce, alerts: AlertSink
    ) -> None:
        self.hub = hub
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.alerts = alerts

    def contact(self, email: str, first: str, last: str, company: str, title: str = "") -> str:
        """A contact made in HubSpot (through its API, as HubSpot's UI would): its id."""
        properties = {"email": email, "firstname": first, "lastname": last, "company": company}
        if title:
            properties["jobtitle"] = title
        response = self.hubspot.http.post(
            "/crm/v3/objects/contacts",
            json={"properties": properties},
            headers={"Authorization": f"Bearer {PAT}"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def change(self, object_id: str, **properties: str) -> None:
        response = self.hubspot.http.patch(
            f"/crm/v3/objects/contacts/{object_id}",
            json={"properties": properties},
            headers={"Authorization": f"Bearer {PAT}"},
        )
        assert response.status_code == 200, response.text

    def webhook(self, *changes: tuple[str, str]) -> list[str]:
        """One signed v3 batch from HubSpot: (objectId, subscriptionType) each; event ids."""
        body = [
            {
                "objectId": int(object_id),
                "eventId": next(_EVENT_IDS),
                "subscriptionId": 25,
                "portalId": 62515,
                "appId": 1160452,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": kind,
                "attemptNumber": 0,
                **({"propertyName": "jobtitle", "propertyValue": "x"} if "Change" in kind else {}),
                "changeSource": "CRM_UI",
            }
            for object_id, kind in changes
        ]
        url = f"{self.hub.url}/webhooks/hubspot"
        raw, headers = signed("hubspot", body, HS_SECRET, url=url, version="v3")
        response = self.hub.http.post("/webhooks/hubspot", content=raw, headers=headers)
        assert response.status_code in (200, 202), response.text
        return [str(e["event_id"]) for e in response.json()["events"]]

    def status(self) -> dict[str, Any]:
        rows = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
        return {row["name"]: row for row in rows}["salesforce"]

    def quiet(self, message: str, timeout: float = 90) -> None:
        def settled() -> bool:
            counts = self.status()["counts"]
            return counts["pending"] + counts["in_flight"] + counts["scheduled"] == 0

        wait_until(settled, timeout=timeout, message=message)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, real_redis_url: str) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("salesforce")
    hubspot = FakeHubSpot("--private-app-token", PAT)
    salesforce = FakeSalesforce(
        "--client-id", SF_ID, "--client-secret", SF_SECRET, "--refresh-token", SF_REFRESH
    )
    sink = AlertSink()
    prefix = f"crmhub-salesforce-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(CONFIG.format(hubspot=hubspot.url, salesforce=salesforce.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "HUBSPOT_CLIENT_SECRET": HS_SECRET,
            "HUBSPOT_TOKEN": PAT,
            "SF_CLIENT_ID": SF_ID,
            "SF_CLIENT_SECRET": SF_SECRET,
            "SF_REFRESH_TOKEN": SF_REFRESH,
            "CRMHUB_ALERT_WEBHOOK_URL": sink.url,
        },
        tmp,
    )
    try:
        yield Running(hub, hubspot, salesforce, sink)
    finally:
        hub.stop()
        hubspot.stop()
        salesforce.stop()
        sink.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


@pytest.fixture
def sync(running: Running) -> Iterator[Running]:
    yield running
    assert running.salesforce.violations() == [], "a request Salesforce would refuse"
    assert running.hubspot.violations() == [], "a request HubSpot would refuse"


def by_email(fake: FakeSalesforce) -> dict[str, dict[str, Any]]:
    return {str(c.get("Email")): c for c in fake.records("Contact")}


def test_thirty_contacts_of_twelve_companies_become_thirty_contacts_and_twelve_accounts(
    sync: Running,
) -> None:
    # a rep's own data in Salesforce first: an Account of one company, and a Contact of one
    # of the people whose Title the rep edited
    rep_account = sync.salesforce.add("Account", Name=COMPANIES[0])
    sync.salesforce.add(
        "Contact", LastName="Person00", Email="person00@example.com", Title="Rep's Title"
    )
    people = []
    for i in range(30):
        cased = f"Person{i:02d}@Example.COM" if i % 2 else f"person{i:02d}@example.com"
        people.append(
            sync.contact(cased, f"First{i}", f"Person{i:02d}", COMPANIES[i % 12], f"Title {i}")
        )
    events = sync.webhook(*[(p, "contact.creation") for p in people])
    # bursts: several property changes per contact, in one batch and in the next ones
    bursts = [(p, "contact.propertyChange") for p in people[:10] for _ in range(3)]
    events += sync.webhook(*bursts[:15])
    events += sync.webhook(*bursts[15:])
    sync.quiet("every delivery of the first wave")
    # a later change at HubSpot reaches Salesforce, except the rep-owned Title
    sync.change(people[0], lastname="Person00-Renamed", jobtitle="HubSpot Title")
    events += sync.webhook((people[0], "contact.propertyChange"))
    sync.quiet("the later change")

    status = sync.status()
    assert status["counts"]["dead"] == 0 and not status["paused"]
    assert status["counts"]["delivered"] >= len(events)
    accounts = {a["Name"]: a["Id"] for a in sync.salesforce.records("Account")}
    assert sorted(accounts) == COMPANIES and accounts[COMPANIES[0]] == rep_account
    contacts = by_email(sync.salesforce)
    assert len(contacts) == 30 and len(sync.salesforce.records("Contact")) == 30
    for i in range(30):
        contact = contacts[f"person{i:02d}@example.com"]
        assert contact["AccountId"] == accounts[COMPANIES[i % 12]]
    assert contacts["person00@example.com"]["Title"] == "Rep's Title"
    assert contacts["person00@example.com"]["LastName"] == "Person00-Renamed"
    assert contacts["person01@example.com"]["Title"] == "Title 1"
    reads = [e for e in sync.hubspot.log() if e.get("endpoint") == "contacts.batch_read"]
    fetched = sum(len(e["body"]["inputs"]) for e in reads)
    assert fetched < len(events)  # a burst within the window costs one fetch


def test_an_expired_session_is_refreshed_without_loss(sync: Running) -> None:
    first = sync.contact("expiry0@example.com", "Ex", "Piry0", COMPANIES[1])
    sync.webhook((first, "contact.creation"))
    wait_until(
        lambda: "expiry0@example.com" in by_email(sync.salesforce), timeout=60, message="the first"
    )
    refreshes = sync.salesforce.stats()["token_refreshes"]
    sync.salesforce.fault(mode="expire_sessions")
    later = [
        sync.contact(f"expiry{i}@example.com", "Ex", f"Piry{i}", COMPANIES[2]) for i in range(1, 6)
    ]
    sync.webhook(*[(p, "contact.creation") for p in later])
    wait_until(
        lambda: all(f"expiry{i}@example.com" in by_email(sync.salesforce) for i in range(6)),
        timeout=60,
        message="every contact after the session expired",
    )
    assert sync.salesforce.stats()["token_refreshes"] == refreshes + 1
    assert sync.status()["counts"]["dead"] == 0 and not sync.status()["paused"]


def test_a_revoked_refresh_token_pauses_holds_alerts_and_resumes_in_order(sync: Running) -> None:
    sync.salesforce.fault(mode="revoke_refresh_token")
    sync.salesforce.fault(mode="expire_sessions")
    held = sync.contact("held@example.com", "Held", "Person", COMPANIES[3])
    others = [
        sync.contact(f"held{i}@example.com", "Held", f"Other{i}", COMPANIES[4]) for i in range(3)
    ]
    event_ids = sync.webhook((held, "contact.creation"))
    wait_until(lambda: sync.status()["paused"], timeout=60, message="the pause on a revoked token")
    row = sync.status()
    assert row["pause_reason"] == "auth" and "invalid_grant" in (row["pause_detail"] or "")
    for other in others:  # the receiver keeps accepting; deliveries are held, in order
        event_ids += sync.webhook((other, "contact.creation"), (held, "contact.propertyChange"))
    wait_until(lambda: sync.status()["counts"]["held"] >= 4, timeout=30, message="held deliveries")
    wait_until(sync.alerts.paused, timeout=30, message="the on-call alert")
    assert [a["connection"] for a in sync.alerts.paused()] == ["salesforce"]
    assert "held@example.com" not in by_email(sync.salesforce)

    # on-call re-authorises the app, installs the new refresh token and resumes
    sync.salesforce.http.post("/_control/refresh-token", json={"refresh_token": "sf-refresh-2"})
    subprocess.run(
        [CRMHUB, "auth", "set-refresh-token", "salesforce"],
        input="sf-refresh-2\n",
        env=sync.hub.env,
        cwd=sync.hub.cwd,
        text=True,
        check=True,
        capture_output=True,
    )
    sync.hub.cli("resume", "salesforce")
    sync.quiet("the held deliveries")
    assert sync.status()["counts"]["held"] == 0 and not sync.status()["paused"]
    contacts = by_email(sync.salesforce)
    assert {
        "held@example.com",
        "held0@example.com",
        "held1@example.com",
        "held2@example.com",
    } <= set(contacts)
    # in order: the held contact's deliveries finished in the order their events arrived
    finished = []
    for event_id in event_ids:
        event = json.loads(sync.hub.cli("events", "show", event_id, "--json").stdout)
        for delivery in event["deliveries"]:
            assert delivery["state"] == "delivered"
            if delivery["record_key"].endswith(f"/{held}"):
                finished.append(delivery["updated_at"])
    assert len(finished) == 4 and finished == sorted(finished)
    # on-call heard once that it paused, and once that it is resolved (resumed and writing)
    wait_until(
        lambda: len(sync.alerts.paused()) >= 2, timeout=30, message="the pause alert's resolution"
    )
    assert [a["status"] for a in sync.alerts.paused()] == ["firing", "resolved"]


def test_a_request_limit_storm_cools_down_and_never_pauses(sync: Running) -> None:
    # the org's daily allocation is used up: whatever ran before (nothing, when this test runs
    # first), the allocation is what was used, never 0 (the fake's "no limit")
    used = max(sync.salesforce.stats()["api_used"], 1)
    sync.salesforce.limits(daily_limit=used, api_used=used)
    storm = [
        sync.contact(f"storm{i}@example.com", "Storm", f"Person{i}", COMPANIES[5]) for i in range(5)
    ]
    sync.webhook(*[(p, "contact.creation") for p in storm])
    wait_until(
        lambda: sync.salesforce.stats()["by_error"].get("REQUEST_LIMIT_EXCEEDED", 0) >= 3,
        timeout=60,
        message="the probes against the exhausted limit",
    )
    row = sync.status()
    assert not row["paused"] and row["counts"]["dead"] == 0
    assert "storm0@example.com" not in by_email(sync.salesforce)
    metrics = sync.hub.http.get("/metrics").text
    assert 'crmhub_target_api_usage{connection="salesforce",kind="limit"}' in metrics
    sync.salesforce.limits(daily_limit=1_000_000)  # the rolling 24 h moved on
    sync.quiet("the drain after the limit passed")
    assert all(f"storm{i}@example.com" in by_email(sync.salesforce) for i in range(5))
    row = sync.status()
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_duplicate_rule_lands_the_event_in_the_dead_letter_queue_with_its_matches(
    sync: Running,
) -> None:
    existing = sync.salesforce.add(
        "Contact", FirstName="Dup", LastName="Licate", Email="old@example.com"
    )
    twin = sync.contact("new-dup@example.com", "Dup", "Licate", COMPANIES[6])
    sync.webhook((twin, "contact.creation"))
    wait_until(lambda: sync.status()["counts"]["dead"] == 1, timeout=60, message="the dead letter")
    [dead] = json.loads(sync.hub.cli("dlq", "list", "--connection", "salesforce", "--json").stdout)[
        "dead_letters"
    ]
    shown = json.loads(sync.hub.cli("dlq", "show", dead["id"], "--json").stdout)
    text = json.dumps(shown)
    assert "DUPLICATES_DETECTED" in text and existing in text
    assert "new-dup@example.com" not in by_email(sync.salesforce)
