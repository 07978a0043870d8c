"""Pipedrive end to end (issue 15's proof): the real hub (`crmhub serve`: gunicorn, a Celery
worker, beat; a real Redis) receives signed Stripe events and writes persons (with their
organizations) to the fake Pipedrive running as a server over loopback, every request checked
against Pipedrive's official OpenAPI document. Two connections to it: `pipedrive` with an API
token, `pipedrive_oauth` with OAuth2 (events whose metadata says `via: oauth`).

- 50 events for 20 customers whose emails differ in case and whitespace end as 20 persons;
- an expired OAuth access token is renewed, no event lost;
- a revoked API token (401) pauses the connection, holds its events and alerts on-call once;
  once the credential works again, `crmhub resume` delivers them in order;
- a 429 storm (with and without Retry-After) cools the connection down; nothing lost or
  duplicated, never a pause;
- Pipedrive's validation error is a dead letter naming the field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from processes import AlertSink, FakePipedrive, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

TOKEN = "pd-e2e-api-token"
CLIENT_ID, CLIENT_SECRET, REFRESH = "pd-client", "pd-client-secret", "pd-refresh-1"

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  pipedrive:
    connector: pipedrive
    base_url: {fake}
    auth: {{type: api_token, token_env: PIPEDRIVE_API_TOKEN}}
    retry: {{base_seconds: 0.2, max_seconds: 2}}
  pipedrive_oauth:
    connector: pipedrive
    base_url: {fake}
    auth: {{type: oauth2, client_id_env: PIPEDRIVE_CLIENT_ID,
            client_secret_env: PIPEDRIVE_CLIENT_SECRET,
            refresh_token_env: PIPEDRIVE_REFRESH_TOKEN, token_url: "{fake}/oauth/token"}}
    retry: {{base_seconds: 0.2, max_seconds: 2}}
mappings:
  customers:
    source: stripe
    when: {{fields: [{{path: data.object.metadata.via, exists: false}}]}}
    connection: pipedrive
    object: persons
    match: {{field: email, from: data.object.email, normalize: email}}
    fields: &fields
      name: data.object.name
      email: {{from: data.object.email, transform: [email]}}
      phone: data.object.phone
      job_title: data.object.metadata.title
    related: &related
      org_id: {{object: organizations, match: {{field: name, from: data.object.metadata.company,
               normalize: strip}}, fields: {{name: {{from: data.object.metadata.company,
               transform: [strip]}}}}}}
  oauth-customers:
    source: stripe
    when: {{fields: [{{path: data.object.metadata.via, exists: true}}]}}
    connection: pipedrive_oauth
    object: persons
    match: {{field: email, from: data.object.email, normalize: email}}
    fields: *fields
    related: *related
"""


class Running:
    def __init__(self, hub: Hub, fake: FakePipedrive, alerts: AlertSink) -> None:
        self.hub = hub
        self.fake = fake
        self.alerts = alerts

    def send(
        self, event_id: str, email: str, name: str, created: int = 1_700_000_000, **meta: str
    ) -> str:
        event = stripe_event(event_id, email=email, metadata=meta)
        if name:
            event["data"]["object"]["name"] = name
        else:
            del event["data"]["object"]["name"]
        event["created"] = created
        body, headers = signed("stripe", event, STRIPE_SECRET)
        response = self.hub.http.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["event_id"])

    def status(self, connection: str = "pipedrive") -> dict[str, Any]:
        rows = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
        return {row["name"]: row for row in rows}[connection]

    def persons(self) -> dict[str, list[dict[str, Any]]]:
        """Persons by their primary email (lower-cased): a list, so a duplicate shows."""
        found: dict[str, list[dict[str, Any]]] = {}
        for person in self.fake.records("persons"):
            for email in person["emails"]:
                if email["primary"]:
                    found.setdefault(email["value"].lower(), []).append(person)
        return found

    def quiet(self, message: str, connection: str = "pipedrive", timeout: float = 90) -> None:
        def settled() -> bool:
            counts = self.status(connection)["counts"]
            return counts["pending"] + counts["in_flight"] + counts["scheduled"] == 0

        wait_until(settled, timeout=timeout, message=message)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, real_redis_url: str) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("pipedrive")
    fake = FakePipedrive(
        "--api-token",
        TOKEN,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--refresh-token",
        REFRESH,
    )
    sink = AlertSink()
    prefix = f"crmhub-pipedrive-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(CONFIG.format(fake=fake.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "PIPEDRIVE_API_TOKEN": TOKEN,
            "PIPEDRIVE_CLIENT_ID": CLIENT_ID,
            "PIPEDRIVE_CLIENT_SECRET": CLIENT_SECRET,
            "PIPEDRIVE_REFRESH_TOKEN": REFRESH,
            "CRMHUB_ALERT_WEBHOOK_URL": sink.url,
        },
        tmp,
    )
    try:
        yield Running(hub, fake, sink)
    finally:
        hub.stop()
        fake.stop()
        sink.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


@pytest.fixture
def sync(running: Running) -> Iterator[Running]:
    yield running
    assert running.fake.violations() == [], "a request Pipedrive would refuse for its shape"


def test_fifty_events_for_twenty_customers_make_twenty_persons(sync: Running) -> None:
    before = sync.status()["counts"]["delivered"]
    for i in range(50):
        customer = i % 20
        padded = (
            ["", " ", "  "][i % 3] + f"Customer{customer}@Example.COM".swapcase()
            if i % 2
            else f"customer{customer}@example.com" + " " * (i % 4)
        )
        sync.send(
            f"evt_pd_many_{i}",
            padded,
            f"Customer Number{customer}",
            created=1_700_000_000 + i,
            title=f"v{i}",
            company=f" Company {customer % 4} ",
        )
    wait_until(
        lambda: sync.status()["counts"]["delivered"] == before + 50,
        timeout=120,
        message="50 deliveries",
    )
    found = {k: v for k, v in sync.persons().items() if k.startswith("customer")}
    assert len(found) == 20 and all(len(v) == 1 for v in found.values())
    organizations = {o["name"]: o["id"] for o in sync.fake.records("organizations")}
    assert sorted(organizations) == [f"Company {c}" for c in range(4)]
    for customer in range(20):
        [person] = found[f"customer{customer}@example.com"]
        newest = max(i for i in range(50) if i % 20 == customer)
        assert person["job_title"] == f"v{newest}"
        assert person["org_id"] == organizations[f"Company {customer % 4}"]
        assert [e["primary"] for e in person["emails"]] == [True]
    assert sync.status()["counts"]["dead"] == 0


def test_an_expired_oauth_token_is_renewed_and_nothing_is_lost(sync: Running) -> None:
    sync.send("evt_pd_exp_0", "expiry0@example.com", "Before Expiry", via="oauth")
    wait_until(
        lambda: "expiry0@example.com" in sync.persons(), timeout=60, message="the first person"
    )
    refreshes = sync.fake.stats()["token_refreshes"]
    sync.fake.fault(mode="expire_tokens")  # the hour is up
    for i in range(1, 6):
        sync.send(f"evt_pd_exp_{i}", f"expiry{i}@example.com", "After Expiry", via="oauth")
    wait_until(
        lambda: all(f"expiry{i}@example.com" in sync.persons() for i in range(6)),
        timeout=60,
        message="every person after the expiry",
    )
    assert sync.fake.stats()["token_refreshes"] == refreshes + 1  # one refresh, shared
    row = sync.status("pipedrive_oauth")
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_revoked_api_token_pauses_holds_alerts_and_resumes_in_order(sync: Running) -> None:
    sync.fake.fault(mode="revoke_api_token")  # a user regenerated the company's token
    names = [f"Held Number{i}" for i in range(8)]
    event_ids = [sync.send("evt_pd_rev_0", "revoked@example.com", names[0], created=1_800_000_000)]
    wait_until(lambda: sync.status()["paused"], timeout=60, message="the pause on a 401")
    row = sync.status()
    assert row["pause_reason"] == "auth" and "API token" in (row["pause_detail"] or "")
    for i in range(1, 8):  # the receiver keeps accepting; deliveries are held, in order
        email = "revoked@example.com" if i % 2 else f"other{i}@example.com"
        event_ids.append(sync.send(f"evt_pd_rev_{i}", email, names[i], created=1_800_000_000 + i))
    wait_until(lambda: sync.status()["counts"]["held"] >= 4, timeout=30, message="held")
    wait_until(sync.alerts.paused, timeout=30, message="the on-call alert")
    assert [a["connection"] for a in sync.alerts.paused()] == ["pipedrive"]
    assert "revoked@example.com" not in sync.persons()

    # on-call restores the credential at Pipedrive, then resumes
    sync.fake.http.post("/_control/api-token", json={"api_token": TOKEN}).raise_for_status()
    sync.hub.cli("resume", "pipedrive")
    sync.quiet("the held deliveries")
    row = sync.status()
    assert row["counts"]["held"] == 0 and not row["paused"] and row["counts"]["dead"] == 0
    persons = sync.persons()
    assert {"other2@example.com", "other4@example.com", "other6@example.com"} <= set(persons)
    [held] = persons["revoked@example.com"]
    assert held["name"] == "Held Number7"
    # in order: the held person's writes reached Pipedrive in the order their events arrived
    writes = [
        entry["body"]["name"]
        for entry in sync.fake.log()
        if entry["status"] == 200
        and (
            (entry["path"] == f"/api/v2/persons/{held['id']}" and entry["method"] == "PATCH")
            or (
                entry["operation"] == "addPerson"
                and entry["body"]["emails"][0]["value"] == "revoked@example.com"
            )
        )
    ]
    assert writes == [
        "Held Number0",
        "Held Number1",
        "Held Number3",
        "Held Number5",
        "Held Number7",
    ]
    wait_until(lambda: len(sync.alerts.paused()) >= 2, timeout=30, message="the alert's resolution")
    assert [a["status"] for a in sync.alerts.paused()] == ["firing", "resolved"]


def test_a_429_storm_cools_down_without_losing_or_duplicating(sync: Running) -> None:
    limited = sync.fake.stats()["rate_limited"]
    sync.fake.fault(mode="rate_limit", count=4, retry_after=1)
    sync.fake.fault(mode="rate_limit", count=4)  # then without Retry-After: x-ratelimit-reset
    for i in range(6):
        sync.send(f"evt_pd_storm_{i}", f"storm{i % 3}@example.com", f"Storm Number{i}")
    sync.quiet("the drain after the storm")
    assert sync.fake.stats()["rate_limited"] >= limited + 8
    persons = sync.persons()
    for i in range(3):
        [person] = persons[f"storm{i}@example.com"]  # exactly one each
        assert person["name"] == f"Storm Number{i + 3}"
    row = sync.status()
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_validation_error_is_a_dead_letter_naming_the_field(sync: Running) -> None:
    dead_before = sync.status()["counts"]["dead"]
    event_id = sync.send("evt_pd_invalid", "nameless@example.com", "")  # no name
    wait_until(
        lambda: sync.status()["counts"]["dead"] == dead_before + 1,
        timeout=60,
        message="the dead letter",
    )
    listed = json.loads(sync.hub.cli("dlq", "list", "--connection", "pipedrive", "--json").stdout)
    [dead] = [d for d in listed["dead_letters"] if d["event_id"] == event_id]
    shown = json.loads(sync.hub.cli("dlq", "show", dead["id"], "--json").stdout)
    text = json.dumps(shown)
    assert "Name must be given" in text and '"field": "name"' in text
    assert "nameless@example.com" not in sync.persons()
