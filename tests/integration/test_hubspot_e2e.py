"""HubSpot end to end (issue proof): the real hub (`crmhub serve`, real Redis) writing to the
fake HubSpot over loopback, every request checked against HubSpot's official request schemas.

- 50 events for 20 customers whose emails differ in case and whitespace end as 20 contacts;
- an expired access token is refreshed, no event lost;
- a revoked refresh token pauses the connection, holds its events and alerts on-call; after
  re-authorising (`crmhub auth set-refresh-token`) and `crmhub resume`, every held event is
  delivered, in order.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import redis
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from processes import CRMHUB, AlertSink, FakeHubSpot, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

CLIENT_ID, CLIENT_SECRET, REFRESH = "crmhub-client", "crmhub-client-secret", "refresh-1"

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  hubspot:
    connector: hubspot
    base_url: {fake}
    auth: {{type: oauth2, client_id_env: HUBSPOT_CLIENT_ID,
            client_secret_env: HUBSPOT_CLIENT_SECRET, refresh_token_env: HUBSPOT_REFRESH_TOKEN,
            token_url: "{fake}/oauth/v1/token"}}
    retry: {{base_seconds: 0.2, max_seconds: 2}}
mappings:
  customers:
    source: stripe
    connection: hubspot
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email]}}
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name]}}
      jobtitle: data.object.metadata.title
"""


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, real_redis_url: str
) -> Iterator[tuple[Hub, FakeHubSpot, AlertSink]]:
    tmp = tmp_path_factory.mktemp("hubspot")
    fake = FakeHubSpot(
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--refresh-token", REFRESH
    )
    sink = AlertSink()
    prefix = f"crmhub-hubspot-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(CONFIG.format(fake=fake.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "HUBSPOT_CLIENT_ID": CLIENT_ID,
            "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
            "HUBSPOT_REFRESH_TOKEN": REFRESH,
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
def hub(running: tuple[Hub, FakeHubSpot, AlertSink]) -> Iterator[tuple[Hub, FakeHubSpot]]:
    yield running[0], running[1]
    assert running[1].violations() == [], "the connector sent a request HubSpot would refuse"


@pytest.fixture
def alerts(running: tuple[Hub, FakeHubSpot, AlertSink]) -> AlertSink:
    return running[2]


def send(
    hub: Hub, event_id: str, email: str, name: str, title: str = "", created: int = 1_700_000_000
) -> str:
    event = stripe_event(event_id, email=email, metadata={"title": title})
    event["data"]["object"]["name"] = name
    event["created"] = created
    body, headers = signed("stripe", event, STRIPE_SECRET)
    response = hub.http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def status(hub: Hub) -> dict:
    (row,) = json.loads(hub.cli("status", "--json").stdout)["connections"]
    return dict(row)


def contacts(fake: FakeHubSpot) -> dict[str, dict]:
    return {r["properties"]["email"]: r["properties"] for r in fake.records("contacts")}


def test_fifty_events_for_twenty_customers_make_twenty_contacts(
    hub: tuple[Hub, FakeHubSpot],
) -> None:
    h, fake = hub
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
            created=1_700_000_000 + i,
        )
    wait_until(
        lambda: status(h)["counts"]["delivered"] == before + 50, timeout=90, message="50 deliveries"
    )
    found = {
        email: props for email, props in contacts(fake).items() if email.startswith("customer")
    }
    assert len(found) == 20
    for customer in range(20):
        newest = max(i for i in range(50) if i % 20 == customer)
        assert found[f"customer{customer}@example.com"]["jobtitle"] == f"v{newest}"
        assert found[f"customer{customer}@example.com"]["firstname"] == "Customer"


def test_an_expired_access_token_is_refreshed_and_nothing_is_lost(
    hub: tuple[Hub, FakeHubSpot],
) -> None:
    h, fake = hub
    send(h, "evt_exp_0", "expiry0@example.com", "Before Expiry")
    wait_until(
        lambda: "expiry0@example.com" in contacts(fake), timeout=30, message="the first contact"
    )
    refreshes = fake.stats()["token_refreshes"]
    fake.fault(mode="expire_tokens")  # HubSpot's token ran out
    for i in range(1, 6):
        send(h, f"evt_exp_{i}", f"expiry{i}@example.com", "After Expiry")
    wait_until(
        lambda: all(f"expiry{i}@example.com" in contacts(fake) for i in range(6)),
        timeout=60,
        message="every contact after the expiry",
    )
    assert fake.stats()["token_refreshes"] == refreshes + 1  # one refresh, shared
    row = status(h)
    assert not row["paused"] and row["counts"]["dead"] == 0


def test_a_revoked_refresh_token_pauses_holds_alerts_and_resumes_in_order(
    hub: tuple[Hub, FakeHubSpot], alerts: AlertSink
) -> None:
    h, fake = hub
    fake.fault(mode="revoke_refresh_token")
    fake.fault(mode="expire_tokens")
    held_names = [f"Held Number{i}" for i in range(8)]
    send(h, "evt_rev_0", "revoked@example.com", held_names[0], created=1_800_000_000)
    wait_until(lambda: status(h)["paused"], timeout=60, message="the pause on a revoked token")
    row = status(h)
    assert row["pause_reason"] == "auth" and "refresh" in (row["pause_detail"] or "")
    # the receiver keeps accepting; deliveries are held, in arrival order
    for i in range(1, 8):
        send(
            h,
            f"evt_rev_{i}",
            "revoked@example.com" if i % 2 else f"other{i}@example.com",
            held_names[i],
            created=1_800_000_000 + i,
        )
    wait_until(lambda: status(h)["counts"]["held"] >= 1, timeout=30, message="held deliveries")
    wait_until(alerts.paused, timeout=30, message="the on-call alert")
    assert [a["connection"] for a in alerts.received] == ["hubspot"]
    assert "revoked@example.com" not in contacts(fake)

    # on-call re-authorises the app, installs the new refresh token and resumes
    fake.http.post("/_control/refresh-token", json={"refresh_token": "refresh-2"})
    subprocess.run(
        [CRMHUB, "auth", "set-refresh-token", "hubspot"],
        input="refresh-2\n",
        env=h.env,
        cwd=h.cwd,
        text=True,
        check=True,
        capture_output=True,
    )
    h.cli("resume", "hubspot")
    wait_until(
        lambda: (
            status(h)["counts"]["held"] == 0
            and "revoked@example.com" in contacts(fake)
            and all(f"other{i}@example.com" in contacts(fake) for i in (2, 4, 6))
        ),
        timeout=60,
        message="the held events to be delivered",
    )
    wait_until(
        lambda: (
            status(h)["counts"]["pending"]
            + status(h)["counts"]["in_flight"]
            + status(h)["counts"]["scheduled"]
            == 0
        ),
        timeout=30,
        message="quiet",
    )
    # in order: the record's last write is its newest event
    assert contacts(fake)["revoked@example.com"]["lastname"] == "Number7"
    upserts = [
        entry
        for entry in fake.http.get("/_control/log").json()["entries"]
        if entry.get("endpoint", "").endswith("batch_upsert") and entry["status"] == 200
    ]
    writes = [
        inp["properties"]["lastname"]
        for entry in upserts
        for inp in entry["body"]["inputs"]
        if inp["id"] == "revoked@example.com"
    ]
    assert writes == ["Number0", "Number1", "Number3", "Number5", "Number7"]
    assert status(h)["counts"]["dead"] == 0 and not status(h)["paused"]
