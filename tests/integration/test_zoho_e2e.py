"""Zoho CRM end to end (issue 15's proof): the real hub (`crmhub serve`: gunicorn, a Celery
worker, beat; a real Redis) receives signed Stripe customer events and writes Contacts, each
linked to its company's Account, to the fake Zoho CRM running as a server over loopback
(accounts server and CRM API; every request checked against Zoho's OpenAPI documents).

- 50 events for 20 customers (emails differing in case and whitespace) end as exactly 20
  Contacts, each with its newest values;
- an expired access token is renewed (one refresh) with no event lost;
- a revoked refresh token (the refresh answered HTTP 200 `{"error": "invalid_code"}`) pauses
  the connection, holds its deliveries, alerts on-call, and after re-authorising and
  `crmhub resume` delivers them in order;
- a 429 storm (with and without Retry-After) and used-up API credits cool the connection
  down, never pause it, and lose or duplicate nothing;
- a value Zoho refuses is a dead letter naming the field.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from processes import CRMHUB, AlertSink, FakeZoho, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

CLIENT_ID, CLIENT_SECRET, REFRESH = "1000.E2ECLIENT", "zoho-e2e-secret", "1000.refresh-1"
COMPANIES = [f"Company {c} (Holdings), Ltd" for c in range(5)]

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  zoho:
    connector: zoho
    accounts_url: {fake}
    auth: {{type: oauth2, client_id_env: ZOHO_CLIENT_ID, client_secret_env: ZOHO_CLIENT_SECRET,
            refresh_token_env: ZOHO_REFRESH_TOKEN}}
    retry: {{base_seconds: 0.2, max_seconds: 2}}
    options: {{limit_probe_max_seconds: 1}}
mappings:
  customers:
    source: stripe
    connection: zoho
    object: Contacts
    match: {{field: Email, from: data.object.email, normalize: email}}
    fields:
      Email: {{from: data.object.email, transform: [email]}}
      First_Name: {{from: data.object.name, transform: [first_name]}}
      Last_Name: {{from: data.object.name, transform: [last_name], required: true}}
      Title: data.object.metadata.title
    related:
      Account_Name: {{object: Accounts, match: {{field: Account_Name,
                     from: data.object.metadata.company, normalize: strip}},
                     fields: {{Account_Name: data.object.metadata.company}}}}
"""


class Running:
    def __init__(self, hub: Hub, zoho: FakeZoho, alerts: AlertSink) -> None:
        self.hub = hub
        self.zoho = zoho
        self.alerts = alerts

    def send(
        self,
        event_id: str,
        email: str,
        name: str,
        title: str = "",
        company: str = COMPANIES[0],
        created: int = 1_700_000_000,
    ) -> str:
        event = stripe_event(event_id, email=email, metadata={"title": title, "company": company})
        event["data"]["object"]["name"] = name
        event["created"] = created
        body, headers = signed("stripe", event, STRIPE_SECRET)
        response = self.hub.http.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["event_id"])

    def status(self) -> dict[str, Any]:
        (row,) = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
        return dict(row)

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("Email")): r for r in self.zoho.records("Contacts")}

    def quiet(self, message: str, timeout: float = 90) -> None:
        def settled() -> bool:
            counts = self.status()["counts"]
            return counts["pending"] + counts["in_flight"] + counts["scheduled"] == 0

        wait_until(settled, timeout=timeout, message=message)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, real_redis_url: str) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("zoho")
    fake = FakeZoho(
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--refresh-token", REFRESH
    )
    sink = AlertSink()
    prefix = f"crmhub-zoho-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(CONFIG.format(fake=fake.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "ZOHO_CLIENT_ID": CLIENT_ID,
            "ZOHO_CLIENT_SECRET": CLIENT_SECRET,
            "ZOHO_REFRESH_TOKEN": REFRESH,
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
def zoho(running: Running) -> Iterator[Running]:
    yield running
    assert running.zoho.violations() == [], "the connector sent a request Zoho would refuse"


def test_fifty_events_for_twenty_customers_make_twenty_contacts(zoho: Running) -> None:
    before = zoho.status()["counts"]["delivered"]
    for i in range(50):
        customer = i % 20
        padded = (
            ["", " ", "  "][i % 3] + f"Customer{customer}@Example.COM".swapcase()
            if i % 2
            else f"customer{customer}@example.com" + " " * (i % 4)
        )
        zoho.send(
            f"evt_many_{i}",
            padded,
            f"Customer Number{customer}",
            title=f"v{i}",
            company=COMPANIES[customer % 5],
            created=1_700_000_000 + i,
        )
    wait_until(
        lambda: zoho.status()["counts"]["delivered"] >= before + 50,
        timeout=120,
        message="50 deliveries",
    )
    zoho.quiet("every delivery")
    found = {e: c for e, c in zoho.contacts().items() if e.startswith("customer")}
    assert len(found) == 20
    accounts = {a["Account_Name"]: a["id"] for a in zoho.zoho.records("Accounts")}
    assert sorted(accounts) == sorted(COMPANIES)
    for customer in range(20):
        newest = max(i for i in range(50) if i % 20 == customer)
        record = found[f"customer{customer}@example.com"]
        assert (record["Title"], record["First_Name"]) == (f"v{newest}", "Customer")
        assert record["Account_Name"] == {"id": accounts[COMPANIES[customer % 5]]}
    row = zoho.status()
    assert row["counts"]["dead"] == 0 and not row["paused"]


def test_an_expired_access_token_is_renewed_and_nothing_is_lost(zoho: Running) -> None:
    zoho.send("evt_exp_0", "expiry0@example.com", "Before Expiry")
    wait_until(
        lambda: "expiry0@example.com" in zoho.contacts(), timeout=60, message="the first contact"
    )
    refreshes = zoho.zoho.stats()["token_refreshes"]
    zoho.zoho.fault(mode="expire_tokens")  # Zoho's hour is up
    for i in range(1, 6):
        zoho.send(f"evt_exp_{i}", f"expiry{i}@example.com", "After Expiry")
    wait_until(
        lambda: all(f"expiry{i}@example.com" in zoho.contacts() for i in range(6)),
        timeout=60,
        message="every contact after the expiry",
    )
    assert zoho.zoho.stats()["token_refreshes"] == refreshes + 1  # one refresh, shared
    assert zoho.zoho.stats()["by_error"].get("INVALID_TOKEN", 0) >= 1
    row = zoho.status()
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_revoked_refresh_token_pauses_holds_alerts_and_resumes_in_order(zoho: Running) -> None:
    zoho.zoho.fault(mode="revoke_refresh_token")
    zoho.zoho.fault(mode="expire_tokens")
    zoho.send("evt_rev_0", "revoked@example.com", "Held Number0", created=1_800_000_000)
    wait_until(lambda: zoho.status()["paused"], timeout=60, message="the pause on invalid_code")
    row = zoho.status()
    assert row["pause_reason"] == "auth" and "invalid_code" in (row["pause_detail"] or "")
    for i in range(1, 8):  # the receiver keeps accepting; deliveries are held, in order
        zoho.send(
            f"evt_rev_{i}",
            "revoked@example.com" if i % 2 else f"other{i}@example.com",
            f"Held Number{i}",
            created=1_800_000_000 + i,
        )
    wait_until(lambda: zoho.status()["counts"]["held"] >= 1, timeout=30, message="held")
    wait_until(zoho.alerts.paused, timeout=30, message="the on-call alert")
    assert [a["connection"] for a in zoho.alerts.paused()] == ["zoho"]
    assert "revoked@example.com" not in zoho.contacts()

    # on-call makes a new refresh token in Zoho's API console, installs it and resumes
    zoho.zoho.http.post("/_control/refresh-token", json={"refresh_token": "1000.refresh-2"})
    subprocess.run(
        [CRMHUB, "auth", "set-refresh-token", "zoho"],
        input="1000.refresh-2\n",
        env=zoho.hub.env,
        cwd=zoho.hub.cwd,
        text=True,
        check=True,
        capture_output=True,
    )
    zoho.hub.cli("resume", "zoho")
    wait_until(
        lambda: (
            zoho.status()["counts"]["held"] == 0
            and "revoked@example.com" in zoho.contacts()
            and all(f"other{i}@example.com" in zoho.contacts() for i in (2, 4, 6))
        ),
        timeout=90,
        message="the held events to be delivered",
    )
    zoho.quiet("quiet after the resume")
    assert zoho.contacts()["revoked@example.com"]["Last_Name"] == "Number7"
    writes = [
        record["Last_Name"]
        for entry in zoho.zoho.log()
        if entry.get("endpoint") == "records.upsert" and entry["status"] in (200, 207)
        for record in entry["body"]["data"]
        if record.get("Email") == "revoked@example.com"
    ]
    assert writes == ["Number0", "Number1", "Number3", "Number5", "Number7"]
    assert zoho.status()["counts"]["dead"] == 0 and not zoho.status()["paused"]


def test_a_429_storm_and_used_up_credits_cool_down_without_loss_or_duplicates(
    zoho: Running,
) -> None:
    zoho.zoho.fault(mode="rate_limit", count=4)  # concurrency refusals without a hint
    zoho.zoho.fault(mode="rate_limit", count=3, retry_after=1)  # then with Retry-After
    for i in range(10):
        zoho.send(f"evt_storm_{i}", f"storm{i}@example.com", f"Storm Person{i}")
    zoho.quiet("the drain after the storm", timeout=120)
    stats = zoho.zoho.stats()
    assert stats["by_error"].get("TOO_MANY_REQUESTS", 0) == 7
    contacts = [c for c in zoho.zoho.records("Contacts") if c["Email"].startswith("storm")]
    assert sorted(c["Email"] for c in contacts) == sorted(
        f"storm{i}@example.com" for i in range(10)
    )  # each exactly once
    row = zoho.status()
    assert not row["paused"] and row["counts"]["dead"] == 0

    used = zoho.zoho.limits()["credits_used"]
    zoho.zoho.limits(credits=used)  # the org's API credits are used up
    for i in range(3):
        zoho.send(f"evt_credit_{i}", f"credit{i}@example.com", f"Credit Person{i}")
    wait_until(
        lambda: zoho.zoho.stats()["by_error"].get("LIMIT_EXCEEDED", 0) >= 2,
        timeout=60,
        message="the refusals on used-up credits",
    )
    row = zoho.status()
    assert not row["paused"] and row["counts"]["dead"] == 0
    assert "credit0@example.com" not in zoho.contacts()
    zoho.zoho.limits(credits=0)  # the rolling 24 hours moved on
    zoho.quiet("the drain after the credits came back")
    assert all(f"credit{i}@example.com" in zoho.contacts() for i in range(3))
    assert zoho.status()["counts"]["dead"] == 0


def test_a_value_zoho_refuses_is_a_dead_letter_naming_the_field(zoho: Running) -> None:
    dead_before = zoho.status()["counts"]["dead"]
    assert dead_before == 0
    zoho.send("evt_long", "longname@example.com", "Long " + "X" * 100)
    wait_until(
        lambda: zoho.status()["counts"]["dead"] == dead_before + 1,
        timeout=60,
        message="the dead letter",
    )
    listed = json.loads(zoho.hub.cli("dlq", "list", "--connection", "zoho", "--json").stdout)
    [dead] = listed["dead_letters"]  # the others of this run were all delivered
    shown = json.loads(zoho.hub.cli("dlq", "show", dead["id"], "--json").stdout)
    text = json.dumps(shown)
    assert "INVALID_DATA" in text and "Last_Name" in text and "maximum_length" in text
    assert "longname@example.com" not in zoho.contacts()
