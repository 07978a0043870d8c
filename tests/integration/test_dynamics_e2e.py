"""Dynamics 365 end to end (issue 15's proof): the real hub (`crmhub serve`: gunicorn, a Celery
worker, beat; a real Redis) receives signed Stripe customer webhooks and writes contacts, each
linked to its company's account, to the fake Dataverse (with its Entra ID token endpoint)
running as a server over loopback, every request checked against the fake's CSDL-like
description.

- 50 events for 20 customers whose emails differ in case and whitespace end as exactly 20
  contacts (and one account per company), each with its newest event's values;
- an expired token is renewed (a new client-credentials token, there is no refresh token),
  no event lost;
- a revoked credential (the client secret expired: AADSTS7000222) pauses the connection,
  holds its deliveries, alerts on-call once, and after a new secret and `crmhub resume`
  delivers them in order;
- a 429 storm (with and without Retry-After) cools the connection down, and nothing is lost
  or written twice;
- a value Dataverse refuses (a last name past its 50 characters) is a dead letter naming the
  field, and the records around it are written.
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
from processes import AlertSink, FakeDynamics, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT_ID, CLIENT_SECRET = "dyn-client", "dyn-secret-1"

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  dynamics:
    connector: dynamics
    base_url: {fake}
    auth: {{type: client_credentials, token_url: "{fake}/{tenant}/oauth2/v2.0/token",
            client_id_env: DYNAMICS_CLIENT_ID, client_secret_env: DYNAMICS_CLIENT_SECRET}}
    alternate_keys: {{contacts: [emailaddress1], accounts: [name]}}
    retry: {{base_seconds: 0.2, max_seconds: 2}}
mappings:
  customers:
    source: stripe
    connection: dynamics
    object: contacts
    match: {{field: emailaddress1, from: data.object.email, normalize: email}}
    fields:
      emailaddress1: {{from: data.object.email, transform: [email]}}
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name]}}
      jobtitle: data.object.metadata.title
    related:
      parentcustomerid_account@odata.bind: {{object: accounts, match: {{field: name,
          from: data.object.metadata.company, normalize: strip}},
          fields: {{name: data.object.metadata.company}}}}
"""


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, real_redis_url: str
) -> Iterator[tuple[Hub, FakeDynamics, AlertSink]]:
    tmp = tmp_path_factory.mktemp("dynamics")
    fake = FakeDynamics(
        "--tenant", TENANT, "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET
    )
    sink = AlertSink()
    prefix = f"crmhub-dynamics-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(CONFIG.format(fake=fake.url, tenant=TENANT))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "DYNAMICS_CLIENT_ID": CLIENT_ID,
            "DYNAMICS_CLIENT_SECRET": CLIENT_SECRET,
            "CRMHUB_ALERT_WEBHOOK_URL": sink.url,
        },
        tmp,
    )
    try:
        yield hub, fake, sink
    finally:
        hub.stop()
        fake.stop()
        sink.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


@pytest.fixture
def hub(running: tuple[Hub, FakeDynamics, AlertSink]) -> Iterator[tuple[Hub, FakeDynamics]]:
    yield running[0], running[1]
    assert running[1].violations() == [], "the connector sent a request Dataverse would refuse"


@pytest.fixture
def alerts(running: tuple[Hub, FakeDynamics, AlertSink]) -> AlertSink:
    return running[2]


def send(
    hub: Hub,
    event_id: str,
    email: str,
    name: str,
    *,
    title: str = "",
    company: str = "Acme Ltd",
    created: int = 1_700_000_000,
) -> str:
    event = stripe_event(event_id, email=email, metadata={"title": title, "company": company})
    event["data"]["object"]["name"] = name
    event["created"] = created
    body, headers = signed("stripe", event, STRIPE_SECRET)
    response = hub.http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def status(hub: Hub) -> dict[str, Any]:
    (row,) = json.loads(hub.cli("status", "--json").stdout)["connections"]
    return dict(row)


def quiet(hub: Hub) -> bool:
    counts = status(hub)["counts"]
    return bool(counts["pending"] + counts["in_flight"] + counts["scheduled"] == 0)


def contacts(fake: FakeDynamics) -> dict[str, dict[str, Any]]:
    return {str(r["emailaddress1"]): r for r in fake.records("contacts")}


def test_fifty_events_for_twenty_customers_make_twenty_contacts(
    hub: tuple[Hub, FakeDynamics],
) -> None:
    h, fake = hub
    user_account = fake.add("accounts", name="Company 0")  # a user made it in Dynamics
    before = status(h)["counts"]["delivered"]
    for i in range(50):
        customer = i % 20
        padded = (
            ["", " ", "  "][i % 3] + f"Customer{customer}@Example.COM".swapcase()
            if i % 2
            else f"customer{customer}@example.com" + " " * (i % 4)
        )
        send(
            h,
            f"evt_many_{i}",
            padded,
            f"Customer Number{customer}",
            title=f"v{i}",
            company=f" Company {customer % 4} ",
            created=1_700_000_000 + i,
        )
    wait_until(
        lambda: status(h)["counts"]["delivered"] == before + 50,
        timeout=120,
        message="50 deliveries",
    )
    found = {e: r for e, r in contacts(fake).items() if e.startswith("customer")}
    assert len(found) == 20
    accounts = {a["name"]: a["accountid"] for a in fake.records("accounts")}
    assert sorted(accounts) == [f"Company {c}" for c in range(4)]
    assert accounts["Company 0"] == user_account  # found on its key, not made again
    for customer in range(20):
        row = found[f"customer{customer}@example.com"]
        newest = max(i for i in range(50) if i % 20 == customer)
        assert row["jobtitle"] == f"v{newest}" and row["firstname"] == "Customer"
        assert row["_parentcustomerid_value"] == accounts[f"Company {customer % 4}"]
    assert status(h)["counts"]["dead"] == 0


def test_an_expired_token_is_renewed_and_nothing_is_lost(hub: tuple[Hub, FakeDynamics]) -> None:
    h, fake = hub
    send(h, "evt_exp_0", "expiry0@example.com", "Before Expiry")
    wait_until(lambda: "expiry0@example.com" in contacts(fake), timeout=60, message="the first")
    tokens = fake.stats()["token_requests"]
    fake.fault(mode="expire_tokens")  # every token issued so far stops working
    for i in range(1, 6):
        send(h, f"evt_exp_{i}", f"expiry{i}@example.com", "After Expiry")
    wait_until(
        lambda: all(f"expiry{i}@example.com" in contacts(fake) for i in range(6)),
        timeout=60,
        message="every contact after the expiry",
    )
    assert fake.stats()["token_requests"] == tokens + 1  # one new token, shared
    row = status(h)
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_revoked_credential_pauses_holds_alerts_and_resumes_in_order(
    hub: tuple[Hub, FakeDynamics], alerts: AlertSink
) -> None:
    h, fake = hub
    fake.fault(mode="revoke_credentials")  # the client secret expired at Entra ID
    fake.fault(mode="expire_tokens")
    names = [f"Held Number{i}" for i in range(8)]
    send(h, "evt_rev_0", "revoked@example.com", names[0], created=1_800_000_000)
    wait_until(lambda: status(h)["paused"], timeout=60, message="the pause on a revoked secret")
    row = status(h)
    assert row["pause_reason"] == "auth" and "AADSTS7000222" in (row["pause_detail"] or "")
    for i in range(1, 8):  # the receiver keeps accepting; deliveries are held, in order
        send(
            h,
            f"evt_rev_{i}",
            "revoked@example.com" if i % 2 else f"other{i}@example.com",
            names[i],
            created=1_800_000_000 + i,
        )
    wait_until(lambda: status(h)["counts"]["held"] >= 1, timeout=30, message="held deliveries")
    wait_until(alerts.paused, timeout=30, message="the on-call alert")
    assert [a["connection"] for a in alerts.paused()] == ["dynamics"]
    assert "revoked@example.com" not in contacts(fake)

    # an admin adds a new client secret at Entra ID (the hub's environment holds it), resume
    fake.http.post("/_control/credentials", json={"client_secret": CLIENT_SECRET})
    h.cli("resume", "dynamics")
    wait_until(
        lambda: (
            quiet(h)
            and status(h)["counts"]["held"] == 0
            and "revoked@example.com" in contacts(fake)
            and all(f"other{i}@example.com" in contacts(fake) for i in (2, 4, 6))
        ),
        timeout=90,
        message="the held events to be delivered",
    )
    assert contacts(fake)["revoked@example.com"]["lastname"] == "Number7"
    writes = [
        inner["body"]["lastname"]
        for entry in fake.log()
        for inner in ((entry["body"] or []) if entry["endpoint"] == "batch" else [entry])
        if isinstance(inner, dict)
        and inner.get("status") in (200, 201)
        and "revoked%40example.com" in str(inner.get("url") or entry.get("path"))
        and isinstance(inner.get("body"), dict)
    ]
    assert writes == ["Number0", "Number1", "Number3", "Number5", "Number7"]
    assert status(h)["counts"]["dead"] == 0 and not status(h)["paused"]
    wait_until(
        lambda: len(alerts.paused()) >= 2, timeout=30, message="the pause alert's resolution"
    )
    assert [a["status"] for a in alerts.paused()] == ["firing", "resolved"]


@pytest.mark.parametrize("mode", ["throttle", "throttle_no_retry_after"])
def test_a_429_storm_cools_down_without_losing_or_duplicating(
    hub: tuple[Hub, FakeDynamics], mode: str
) -> None:
    h, fake = hub
    before = fake.stats()["by_status"].get("429", 0)
    fake.fault(mode=mode, count=4, retry_after=1, limit="requests")
    emails = [f"storm-{mode}-{i}@example.com" for i in range(12)]
    for i, email in enumerate(emails):
        send(h, f"evt_{mode}_{i}", email, f"Storm Person{i}", company="Storm Co")
    wait_until(
        lambda: quiet(h) and all(e in contacts(fake) for e in emails),
        timeout=120,
        message="the drain after the storm",
    )
    stats = fake.stats()
    assert stats["by_status"].get("429", 0) - before == 4
    assert stats["by_error"].get("0x80072322", 0) >= 4
    rows = [r for r in fake.records("contacts") if str(r["emailaddress1"]).startswith("storm-")]
    assert len([r for r in rows if mode in r["emailaddress1"]]) == 12  # none twice
    row = status(h)
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_value_dataverse_refuses_is_a_dead_letter_naming_the_field(
    hub: tuple[Hub, FakeDynamics],
) -> None:
    h, fake = hub
    dead_before = status(h)["counts"]["dead"]
    send(h, "evt_ok_1", "fine1@example.com", "Fine One")
    send(h, "evt_long", "toolong@example.com", "Too " + "L" * 60)  # lastname: max 50
    send(h, "evt_ok_2", "fine2@example.com", "Fine Two")
    wait_until(
        lambda: status(h)["counts"]["dead"] == dead_before + 1 and quiet(h),
        timeout=60,
        message="the dead letter",
    )
    assert {"fine1@example.com", "fine2@example.com"} <= set(contacts(fake))
    assert "toolong@example.com" not in contacts(fake)
    listed = json.loads(h.cli("dlq", "list", "--connection", "dynamics", "--json").stdout)
    [dead] = [d for d in listed["dead_letters"] if "toolong" in json.dumps(d)] or [
        listed["dead_letters"][-1]
    ]
    shown = json.loads(h.cli("dlq", "show", dead["id"], "--json").stdout)
    text = json.dumps(shown)
    assert "0x80044331" in text and '"field": "lastname"' in text
