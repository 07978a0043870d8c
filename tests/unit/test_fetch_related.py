"""A mapping's `fetch:` and `related:` in the delivery worker (workers/enrich.py): HubSpot's thin
contact webhooks become Salesforce Contacts with their Accounts. The ledger on fakeredis, events
accepted as the receiver accepts them, and the package's fake HubSpot and fake Salesforce
in-process behind their httpx transports."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from conftest import make_settings
from hubtest import accept_webhook

from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.salesforce import FakeSalesforce
from connectors.fakes.transport import FakeTransport
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from core.mapping import map_event
from workers.delivery import run_delivery
from workers.enrich import link_related
from workers.runtime import WorkerRuntime

WriteConfig = Callable[..., Path]
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CONFIG = """
sources:
  hubspot:
    verify: {scheme: hubspot, version: v3, secret_env: HUBSPOT_CLIENT_SECRET}
    batch: true
    event_id: eventId
    event_type: subscriptionType
    occurred_at: occurredAt
connections:
  hubspot:
    connector: hubspot
    base_url: https://api.hubapi.com
    auth: {type: bearer, token_env: HUBSPOT_TOKEN}
  salesforce:
    connector: salesforce
    login_url: https://login.salesforce.com
    auth: {type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
           refresh_token_env: SF_REFRESH_TOKEN}
    api_version: "62.0"
mappings:
  hubspot-contact-to-salesforce:
    source: hubspot
    when: {event_type: [contact.creation, contact.propertyChange]}
    fetch: {connection: hubspot, object: contacts, id: objectId,
            properties: [firstname, lastname, email, jobtitle, company], window_seconds: WINDOW}
    connection: salesforce
    object: Contact
    match: {field: Email, from: fetched.properties.email, normalize: email}
    fields:
      FirstName: fetched.properties.firstname
      LastName: {from: fetched.properties.lastname, required: true}
      Email: {from: fetched.properties.email, transform: [email]}
      Title: {from: fetched.properties.jobtitle, owner: target}
    related:
      AccountId: {object: Account, match: {field: Name, from: fetched.properties.company,
                  normalize: strip}, fields: {Name: fetched.properties.company}}
"""
ENV = {
    "HUBSPOT_CLIENT_SECRET": "hs-secret",
    "HUBSPOT_TOKEN": TOKEN,
    "SF_CLIENT_ID": "fake-sf-client-id",
    "SF_CLIENT_SECRET": "fake-sf-client-secret",
    "SF_REFRESH_TOKEN": "fake-sf-refresh-token",
}


class Env:
    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.hubspot = FakeHubSpot(private_app_token=TOKEN)
        self.salesforce = FakeSalesforce()
        connections = rt.config.connections
        rt._connectors["hubspot"] = HubSpotConnector(
            connections["hubspot"],
            rt.settings.environ,
            transport=FakeTransport(self.hubspot),
            tokens=rt.ledger.tokens,
            memo=rt.ledger.memo,
        )
        rt._connectors["salesforce"] = SalesforceConnector(
            connections["salesforce"],
            rt.settings.environ,
            transport=FakeTransport(self.salesforce),
            tokens=rt.ledger.tokens,
            memo=rt.ledger.memo,
        )
        self.n = 0

    def webhook(self, *changes: tuple[str, str]) -> list[str]:
        """HubSpot's batched webhook: (objectId, subscriptionType) each; the delivery ids."""
        body = []
        for object_id, kind in changes:
            self.n += 1
            body.append(
                {
                    "objectId": int(object_id),
                    "eventId": 1000 + self.n,
                    "subscriptionType": kind,
                    "occurredAt": int(time.time() * 1000) - 1000 + self.n,
                    "portalId": 62515,
                    "attemptNumber": 0,
                }
            )
        events = accept_webhook(self.rt.config, self.rt.ledger, body, source="hubspot")  # type: ignore[arg-type]
        return [d.id for e in events for d in e.deliveries]

    def drain(self) -> None:
        """Run every queued message, oldest first, as the Celery worker would."""
        ledger = self.rt.ledger
        while (message := ledger.redis.rpop(ledger.queue.key)) is not None:
            assert isinstance(message, bytes)
            args, _, _ = json.loads(json.loads(message)["body"])
            run_delivery(self.rt, args[0])

    def state(self, delivery_id: str) -> dict[str, Any]:
        return self.rt.ledger.raw_delivery(delivery_id)

    def fetches(self) -> int:
        return sum(1 for e in self.hubspot.log() if e["endpoint"].startswith("contacts.batch_read"))


def build(write_config: WriteConfig, key_prefix: str, window: float = 10) -> Env:
    config = write_config(CONFIG.replace("WINDOW", str(window)))
    settings = make_settings(config, key_prefix, redis_url="redis://unused", **ENV)
    return Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))


@pytest.fixture
def env(write_config: WriteConfig, key_prefix: str) -> Iterator[Env]:
    e = build(write_config, key_prefix)
    yield e
    e.rt.close()
    assert e.salesforce.violations() == [] and e.hubspot.violations() == []


def person(env: Env, i: int, company: str, **more: str) -> str:
    return env.hubspot.add_record(
        "contacts",
        email=f"Person{i}@Example.com",
        firstname=f"First{i}",
        lastname=f"Last{i}",
        jobtitle=f"Title{i}",
        company=company,
        **more,
    )


def test_thin_webhooks_become_contacts_linked_to_one_account_per_company(env: Env) -> None:
    ids = [person(env, i, ["Acme", "Globex", " Acme "][i % 3]) for i in range(6)]
    deliveries = env.webhook(*[(i, "contact.creation") for i in ids])
    env.drain()
    assert all(env.state(d)["state"] == "delivered" for d in deliveries)
    accounts = {a["Name"]: a["Id"] for a in env.salesforce.records("Account")}
    assert sorted(accounts) == ["Acme", "Globex"]
    contacts = {c["Email"]: c for c in env.salesforce.records("Contact")}
    assert len(contacts) == 6
    for i in range(6):
        linked = contacts[f"person{i}@example.com"]
        assert linked["AccountId"] == accounts[["Acme", "Globex", "Acme"][i % 3]]
        assert linked["Title"] == f"Title{i}"


def test_a_burst_of_property_changes_costs_one_fetch_and_writes_in_order(env: Env) -> None:
    hs_id = person(env, 1, "Initech")
    burst = env.webhook(*[(hs_id, "contact.propertyChange")] * 4)
    env.drain()
    assert [env.state(d)["state"] for d in burst] == ["delivered"] * 4
    assert env.fetches() == 1
    [only] = env.salesforce.records("Contact")
    assert only["LastName"] == "Last1"


def test_without_a_window_each_event_fetches_again(
    write_config: WriteConfig, key_prefix: str
) -> None:
    env = build(write_config, key_prefix, window=0)
    hs_id = person(env, 1, "Initech")
    env.webhook(*[(hs_id, "contact.propertyChange")] * 3)
    env.drain()
    assert env.fetches() == 3
    env.rt.close()


def test_a_rep_edited_title_is_never_overwritten(env: Env) -> None:
    hs_id = person(env, 2, "Hooli")
    env.webhook((hs_id, "contact.creation"))
    env.drain()
    [made] = env.salesforce.records("Contact")
    env.salesforce.edit_record("Contact", made["Id"], Title="Head of Sales")
    time.sleep(0.002)
    env.webhook((hs_id, "contact.propertyChange"))
    env.drain()
    [after] = env.salesforce.records("Contact")
    assert after["Title"] == "Head of Sales"


def test_a_deleted_source_record_is_a_dead_letter_source_record_missing(env: Env) -> None:
    [delivery] = env.webhook(("987654", "contact.creation"))
    env.drain()
    dead = env.state(delivery)
    assert dead["state"] == "dead" and dead["dead_category"] == "source_record_missing"
    assert "987654" in dead["dead_error"]


def test_a_retry_after_a_crash_never_creates_a_second_account(env: Env) -> None:
    person(env, 3, "Umbrella")
    mapping = env.rt.config.mappings["hubspot-contact-to-salesforce"]
    fetched = env.rt.connector("hubspot").fetch(
        "contacts", str(env.hubspot.records("contacts")[0]["id"]), ["email", "lastname", "company"]
    )
    record = map_event(mapping, {"objectId": 1, "fetched": fetched})
    [first] = link_related(env.rt, [record])
    # the worker died after creating the Account, before the ledger remembered its id
    env.rt.ledger.redis.flushall()
    [again] = link_related(env.rt, [record])
    assert len(env.salesforce.records("Account")) == 1
    assert first == again


def test_concurrent_contacts_of_one_company_create_one_account(env: Env) -> None:
    person(env, 4, "Stark")
    mapping = env.rt.config.mappings["hubspot-contact-to-salesforce"]
    records = [
        map_event(
            mapping,
            {
                "objectId": i,
                "fetched": {
                    "properties": {"email": f"p{i}@x.com", "lastname": "L", "company": "Stark"}
                },
            },
        )
        for i in range(6)
    ]
    salesforce = env.rt.connector("salesforce")
    assert isinstance(salesforce, SalesforceConnector)
    salesforce.query("SELECT Id FROM Account")  # logged in already
    env.salesforce.fault(mode="latency", latency_ms=30)  # widen the window for a race
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda r=r: results.extend(link_related(env.rt, [r])))
        for r in records
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(env.salesforce.records("Account")) == 1
    assert len({r.values()["AccountId"] for r in results}) == 1


def test_a_link_refused_for_a_deleted_account_is_found_again_on_replay(env: Env) -> None:
    hs_id = person(env, 5, "Wayne")
    env.webhook((hs_id, "contact.creation"))
    env.drain()
    [account] = env.salesforce.records("Account")
    with env.salesforce.state.lock:  # a rep deletes the Account in Salesforce
        del env.salesforce.state.records["Account"][account["Id"]]
    other = person(env, 6, "Wayne")
    [delivery] = env.webhook((other, "contact.creation"))
    env.drain()
    dead = env.state(delivery)
    assert dead["state"] == "dead" and "AccountId" in dead["dead_error"] + dead["dead_record"]
    again = env.webhook((other, "contact.propertyChange"))
    env.drain()
    assert env.state(again[0])["state"] == "delivered"
    [recreated] = env.salesforce.records("Account")
    assert recreated["Id"] != account["Id"]


def test_a_refused_fetch_credential_pauses_the_fetching_connection_and_its_readers_wait(
    env: Env,
) -> None:
    """HubSpot refusing our token pauses HubSpot (and alerts as any pause), never Salesforce;
    the deliveries that read HubSpot wait, no attempt used, and go on in order once resumed."""
    from core.alerting.service import evaluate_alerts

    hs_id = person(env, 7, "Umbrella")
    env.hubspot.state.config.private_app_token = "pat-revoked"  # the token we hold is dead
    first, second = env.webhook((hs_id, "contact.creation"), (hs_id, "contact.propertyChange"))
    env.drain()
    ledger = env.rt.ledger
    assert (ledger.pause_info("hubspot") or {}).get("reason") == "auth"
    assert ledger.pause_info("salesforce") is None
    waiting = env.state(first)
    assert waiting["state"] == "scheduled" and waiting["attempts"] == "0"
    assert env.state(second)["state"] == "pending"  # behind it, in its record's order
    assert env.salesforce.records("Contact") == []
    result = evaluate_alerts(ledger, env.rt.config, sinks=["oncall"], now=time.time())
    assert result is not None
    assert [(s.kind, s.connection) for s in result.notices] == [("connection_paused", "hubspot")]

    env.hubspot.state.config.private_app_token = TOKEN  # re-authorised
    ledger.resume("hubspot", time.time(), by="ops")
    ledger.sweep(now=time.time() + 16, republish_after_seconds=60)  # the wait is over
    env.drain()
    assert [env.state(d)["state"] for d in (first, second)] == ["delivered", "delivered"]
    assert len(env.salesforce.records("Contact")) == 1
    result = evaluate_alerts(ledger, env.rt.config, sinks=["oncall"], now=time.time() + 20)
    assert result is not None
    assert [(s.kind, s.status) for s in result.notices] == [("connection_paused", "resolved")]


def test_a_fetch_takes_its_place_in_the_fetching_connections_rate_limit(
    write_config: WriteConfig, key_prefix: str
) -> None:
    """HubSpot's limit holds for the reads a delivery makes of it too: with room for one
    request a minute, the first contact's fetch takes it; the next one waits for room, no
    attempt used, no cooldown and no request made, and goes on once there is room."""
    limited = CONFIG.replace(
        "    auth: {type: bearer, token_env: HUBSPOT_TOKEN}\n",
        "    auth: {type: bearer, token_env: HUBSPOT_TOKEN}\n"
        "    rate_limit: {requests: 1, per_seconds: 60}\n",
    )
    config = write_config(limited.replace("WINDOW", "0"))
    settings = make_settings(config, key_prefix, redis_url="redis://unused", **ENV)
    env = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    first, second = (person(env, i, "Stark") for i in (8, 9))
    [one] = env.webhook((first, "contact.creation"))
    env.drain()
    assert env.state(one)["state"] == "delivered" and env.fetches() == 1
    [other] = env.webhook((second, "contact.creation"))
    env.drain()
    waiting = env.state(other)
    assert waiting["state"] == "scheduled" and waiting["attempts"] == "0", waiting
    assert env.fetches() == 1  # no request beyond the limit
    ledger = env.rt.ledger
    assert ledger.connection_state("hubspot")["cooldown_until_ms"] is None  # not HubSpot's 429
    due = float(waiting["due_at"]) / 1000
    assert 50 < due - time.time() <= 61  # when the one place in the window comes free
    ledger.redis.delete(ledger.keys.rate_window("hubspot"))  # the minute has passed
    ledger.sweep(now=due + 1, republish_after_seconds=60)
    env.drain()
    assert env.state(other)["state"] == "delivered" and env.fetches() == 2
    assert len(env.salesforce.records("Contact")) == 2
    env.rt.close()
