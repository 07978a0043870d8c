"""Polling sources (core/polling.py): changed records listed from the fake Salesforce, HubSpot
and generic REST CRM in-process, recorded as events through the webhook intake on a fakeredis
ledger; the cursor, equal stamps at a page boundary, a crash between a page's events and its
cursor, and the connection's pause switch and credentials."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from conftest import make_settings

from connectors.fakes.http import HttpCrm
from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.salesforce import FakeSalesforce
from connectors.fakes.transport import FakeTransport
from connectors.http import HttpConnector
from connectors.hubspot import HubSpotConnector
from connectors.registry import CONNECTORS
from connectors.salesforce import SalesforceConnector
from core.changes import Stamp
from core.config import load_config
from core.errors import ConfigError
from core.ledger.polls import Cursor
from core.polling import ACCEPT_CHUNK, poll_source
from workers.poller import dispatch_polls, run_poll
from workers.runtime import WorkerRuntime

WriteConfig = Callable[..., Path]
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CONFIG = """
sources:
  sf-contacts:
    poll: {connection: salesforce, object: Contact, every: 60s, cursor: SystemModstamp,
           fields: [Id, Email, FirstName, LastName, Title], page_size: 200}
  hs-contacts:
    poll: {connection: hubspot, object: contacts, every: 5s, cursor: lastmodifieddate,
           fields: [email, firstname, lastname], page_size: 50}
  crm-changes:
    poll: {connection: crm, object: contacts, every: 5s, cursor: updated_at, id_field: id,
           list: {since_param: updated_since, items: data, next: next_cursor,
                  next_param: cursor, limit_param: limit}, page_size: 100}
connections:
  salesforce:
    connector: salesforce
    login_url: https://login.salesforce.com
    auth: {type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
           refresh_token_env: SF_REFRESH_TOKEN}
  hubspot:
    connector: hubspot
    base_url: https://api.hubapi.com
    auth: {type: bearer, token_env: HUBSPOT_TOKEN}
  crm:
    connector: http
    base_url: https://crm.example.com
  target:
    connector: http
    base_url: https://target.example.com
mappings:
  sf-to-target:
    source: sf-contacts
    when: {event_type: Contact.changed}
    connection: target
    object: people
    match: {field: email, from: Email, normalize: email}
    fields:
      email: Email
      last_name: LastName
"""
ENV = {
    "HUBSPOT_TOKEN": TOKEN,
    "SF_CLIENT_ID": "fake-sf-client-id",
    "SF_CLIENT_SECRET": "fake-sf-client-secret",
    "SF_REFRESH_TOKEN": "fake-sf-refresh-token",
}


class Env:
    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.salesforce = FakeSalesforce()
        self.hubspot = FakeHubSpot(private_app_token=TOKEN)
        self.crm = HttpCrm()
        connections = rt.config.connections
        shared: dict[str, Any] = {"tokens": rt.ledger.tokens, "memo": rt.ledger.memo}
        rt._connectors["salesforce"] = SalesforceConnector(
            connections["salesforce"],
            rt.settings.environ,
            transport=FakeTransport(self.salesforce),
            **shared,
        )
        rt._connectors["hubspot"] = HubSpotConnector(
            connections["hubspot"],
            rt.settings.environ,
            transport=FakeTransport(self.hubspot),
            **shared,
        )
        rt._connectors["crm"] = HttpConnector(
            connections["crm"], rt.settings.environ, transport=FakeTransport(self.crm), **shared
        )

    def poll(self, source: str, **kwargs: Any) -> Any:
        connection = self.rt.config.sources[source].poll.connection  # type: ignore[union-attr]
        return poll_source(
            self.rt.ledger, self.rt.config, source, self.rt.connector(connection), **kwargs
        )

    def events(self, source: str) -> list[dict[str, str]]:
        ledger = self.rt.ledger
        found = ledger.redis.zrange(ledger.keys.source_events(source), 0, -1)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
        return [ledger.raw_event(i) for i in ids]


@pytest.fixture
def env(write_config: WriteConfig, key_prefix: str) -> Iterator[Env]:
    settings = make_settings(write_config(CONFIG), key_prefix, redis_url="redis://unused", **ENV)
    e = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    yield e
    e.rt.close()
    assert e.salesforce.violations() == [] and e.hubspot.violations() == []


def _start_before(env: Env, source: str) -> None:
    """Place the cursor a minute back, as if the source had started then."""
    env.rt.ledger.polls.advance(source, Cursor(Stamp.at(int((time.time() - 60) * 1000))), 0)


# the configuration ---------------------------------------------------------------------
def test_a_polling_source_needs_no_verify_and_the_receiver_gives_it_no_route(env: Env) -> None:
    source = env.rt.config.sources["sf-contacts"]
    assert source.poll is not None and source.poll.every == 60.0 and source.webhooks is False
    assert source.poll.fields == ("Id", "Email", "FirstName", "LastName", "Title")
    from app.runtime import _receivers

    assert "sf-contacts" not in _receivers(env.rt.settings, env.rt.config)


@pytest.mark.parametrize(
    ("poll", "key", "message"),
    [
        ("{connection: nope, object: Contact, every: 60s, cursor: SystemModstamp}",
         "sources.s.poll.connection", "no connection named 'nope'"),
        ("{connection: crm, object: contacts, every: 60s, cursor: updated_at}",
         "sources.s.poll.list", "give `list:`"),
        ("{connection: sf, object: Contact, every: 0.5s, cursor: SystemModstamp}",
         "sources.s.poll.every", "at most once a second"),
        ("{connection: sf, object: Contact, cursor: SystemModstamp}",
         "sources.s.poll.every", "Missing data"),
        ("{connection: sf, object: Contact, every: 1m, cursor: X, page_size: 5000}",
         "sources.s.poll.page_size", "1 to 2000"),
        ("{connection: hs, object: contacts, every: 1m, cursor: X, page_size: 500}",
         "sources.s.poll.page_size", "at most 200 a page"),
        ("{connection: sf, object: Contact, every: 1m, cursor: X, list: {since_param: s}}",
         "sources.s.poll.list", "applies to http connections"),
        ("{connection: crm, object: c, every: 1m, cursor: X, list: {since_param: s, next: n}}",
         "sources.s.poll.list.next_param", "go together"),
    ],
)  # fmt: skip
def test_a_poll_written_wrong_is_refused_naming_the_key(
    write_config: WriteConfig, poll: str, key: str, message: str
) -> None:
    path = write_config(
        f"""
sources:
  s:
    poll: {poll}
connections:
  sf: {{connector: salesforce, base_url: "https://x.my.salesforce.com"}}
  hs: {{connector: hubspot, base_url: "https://api.hubapi.com"}}
  crm: {{connector: http, base_url: "https://crm.example.com"}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, connectors=CONNECTORS)
    found = [(p.key, p.message) for p in caught.value.problems]
    assert any(k == key and message in m for k, m in found), found


def test_a_connector_that_cannot_list_is_refused(write_config: WriteConfig) -> None:
    class WritesOnly(HttpConnector):
        lists_changes = False

    path = write_config(
        """
sources:
  s: {poll: {connection: c, object: o, every: 1m, cursor: t, list: {since_param: s}}}
connections:
  c: {connector: writer, base_url: "https://c.example.com"}
"""
    )
    with pytest.raises(ConfigError, match="cannot list changed records; poll a connection"):
        load_config(path, {}, connectors={"writer": WritesOnly, **CONNECTORS})


def test_a_source_needs_webhooks_or_a_poll(write_config: WriteConfig) -> None:
    path = write_config("sources:\n  s: {event_id: id}\n")
    with pytest.raises(ConfigError, match=r"receives webhooks .* or polls a connection"):
        load_config(path, {}, connectors=CONNECTORS)


# Salesforce ------------------------------------------------------------------------------
def test_a_new_source_starts_from_now_and_records_later_changes_once(env: Env) -> None:
    before = env.salesforce.add_record("Contact", LastName="Old", Email="old@example.com")
    time.sleep(1.1)  # older than the start's margin (stamps are to the second)
    first = env.poll("sf-contacts")
    assert first.caught_up and first.recorded == 0  # history is the backfill's
    time.sleep(0.01)
    env.salesforce.edit_record("Contact", before, Title="CTO")
    made = env.salesforce.add_record("Contact", LastName="New", Email="new@example.com")
    run = env.poll("sf-contacts")
    assert run.recorded == 2
    events = env.events("sf-contacts")
    assert {e["type"] for e in events} == {"Contact.changed"}
    bodies = {json.loads(e["body"])["Id"]: json.loads(e["body"]) for e in events}
    assert bodies[before]["Title"] == "CTO" and bodies[made]["Email"] == "new@example.com"
    assert all(e["external_id"].startswith(json.loads(e["body"])["Id"] + "@") for e in events)
    # the mapping routed them: one delivery each, as a webhook's would be
    assert all(e["deliveries"] for e in events)
    again = env.poll("sf-contacts")  # the cursor's stamp is listed again: deduplicated
    assert again.recorded == 0 and len(env.events("sf-contacts")) == 2


def test_equal_stamps_across_a_page_boundary_are_all_recorded(env: Env) -> None:
    _start_before(env, "sf-contacts")
    # 450 records saved within the same second or two: pages of 200 end inside one stamp
    ids = [
        env.salesforce.add_record("Contact", LastName=f"L{i}", Email=f"p{i}@example.com")
        for i in range(450)
    ]
    run = env.poll("sf-contacts")
    assert run.caught_up and run.recorded == 450
    assert {json.loads(e["body"])["Id"] for e in env.events("sf-contacts")} == set(ids)
    queries = [e for e in env.salesforce.log() if "query" in e["path"]]
    assert all(e["status"] == 200 for e in queries)


def test_two_changes_within_one_stamp_are_two_events(env: Env) -> None:
    _start_before(env, "sf-contacts")
    record = env.salesforce.add_record("Contact", LastName="A", Email="a@example.com")
    env.poll("sf-contacts")
    env.salesforce.edit_record("Contact", record, Title="One")
    env.poll("sf-contacts")
    env.salesforce.edit_record("Contact", record, Title="Two")  # likely the same second
    env.poll("sf-contacts")
    titles = [json.loads(e["body"]).get("Title") for e in env.events("sf-contacts")]
    assert titles == [None, "One", "Two"]


def test_a_crash_between_a_page_and_its_cursor_neither_skips_nor_doubles(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start_before(env, "sf-contacts")
    ids = [
        env.salesforce.add_record("Contact", LastName=f"L{i}", Email=f"c{i}@example.com")
        for i in range(500)
    ]
    store = env.rt.ledger.polls
    real = store.advance
    calls = {"n": 0}

    def crash_on_second(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("killed between the page's events and its cursor")
        real(*args, **kwargs)

    monkeypatch.setattr(store, "advance", crash_on_second)
    with pytest.raises(SystemExit):
        env.poll("sf-contacts")
    monkeypatch.setattr(store, "advance", real)
    run = env.poll("sf-contacts")
    assert run.caught_up and run.duplicates >= 1  # the second page, listed again
    listed = [json.loads(e["body"])["Id"] for e in env.events("sf-contacts")]
    assert sorted(listed) == sorted(ids)  # every change exactly once


def test_a_refused_credential_while_polling_pauses_the_connection(env: Env) -> None:
    env.salesforce.fault(mode="revoke_refresh_token")
    env.salesforce.fault(mode="expire_sessions")
    run = env.poll("sf-contacts")
    assert "refused our credentials" in run.error
    pause = env.rt.ledger.pause_info("salesforce")
    assert pause is not None and pause["reason"] == "auth"
    assert env.poll("sf-contacts").stopped == "paused"  # nothing is listed while paused


def test_polls_share_the_connections_rate_limit(env: Env) -> None:
    """The permit takes the connection's own rate token: a full bucket makes the poll wait."""
    ledger = env.rt.ledger
    now = time.time()
    for _ in range(3):
        assert (
            ledger.polls.permit(
                "salesforce", who="t", now=now, probe_seconds=5, rate=(3, 60)
            ).status
            == "claimed"
        )
    refused = ledger.polls.permit("salesforce", who="t", now=now, probe_seconds=5, rate=(3, 60))
    assert refused.status == "wait" and refused.wait_ms > 1000


def test_the_circuit_opened_by_failing_listings_stops_polls(env: Env) -> None:
    for _ in range(5):
        env.rt.ledger.polls.read_outcome("salesforce", now=time.time(), ok=False, transient=True)
    assert env.poll("sf-contacts").stopped == "circuit_open"


# HubSpot and the generic http connector --------------------------------------------------
def test_hubspot_lists_changes_through_search_keyset_paged(env: Env) -> None:
    _start_before(env, "hs-contacts")
    ids = [env.hubspot.add_record("contacts", email=f"h{i}@example.com") for i in range(120)]
    run = env.poll("hs-contacts")
    assert run.caught_up and run.recorded == 120 and run.pages >= 3
    events = env.events("hs-contacts")
    assert sorted(json.loads(e["body"])["id"] for e in events) == sorted(ids)
    assert {e["type"] for e in events} == {"contacts.changed"}


def test_the_http_connector_lists_with_its_configured_parameters(env: Env) -> None:
    _start_before(env, "crm-changes")
    for i in range(250):
        env.crm.state.handle("PUT", "", "contacts", f"k{i}", json.dumps({"n": i}).encode(),
                             True, None, False)  # fmt: skip
    run = env.poll("crm-changes")
    assert run.caught_up and run.recorded == 250
    first = next(e for e in env.crm.state.log if e["method"] == "GET")
    assert first["path"] == "/contacts"
    assert sorted(json.loads(e["body"])["id"] for e in env.events("crm-changes")) == sorted(
        f"k{i}" for i in range(250)
    )


# the scheduler ---------------------------------------------------------------------------
def test_due_sources_are_dispatched_once_per_every_and_polled_single_flight(env: Env) -> None:
    sent: list[str] = []
    now = time.time()
    assert sorted(dispatch_polls(env.rt, sent.append, now)) == [
        "crm-changes",
        "hs-contacts",
        "sf-contacts",
    ]
    assert dispatch_polls(env.rt, sent.append, now + 1) == []  # not due again yet
    with env.rt.ledger.polls.lock("sf-contacts", 30):
        assert run_poll(env.rt, "sf-contacts") is None  # another worker holds it
    run = run_poll(env.rt, "sf-contacts")
    assert run is not None and run.caught_up
    status = env.rt.ledger.polls.status("sf-contacts")
    assert status.cursor is not None and status.ok_at is not None and status.error == ""
    assert status.next_at is not None and status.next_at >= time.time() + 59


def test_status_shows_each_polling_sources_cursor_last_poll_and_last_error(env: Env) -> None:
    from core.operations import polling_status

    run_poll(env.rt, "sf-contacts")
    env.rt.ledger.pause("crm", reason="manual", by="ana", now=time.time())
    run_poll(env.rt, "crm-changes")
    rows = {row["name"]: row for row in polling_status(env.rt.ledger, env.rt.config)}
    assert set(rows) == {"sf-contacts", "hs-contacts", "crm-changes"}
    sf = rows["sf-contacts"]
    assert sf["cursor"] and sf["last_poll_at"] and sf["last_ok_at"] and sf["last_error"] is None
    assert rows["crm-changes"]["last_error"] == "not polled: the connection's paused"
    assert rows["hs-contacts"]["cursor"] is None and rows["hs-contacts"]["last_poll_at"] is None


# backfill --------------------------------------------------------------------------------
def _backfill(env: Env, **kwargs: Any) -> Any:
    from core.backfill import backfill

    kwargs.setdefault("max_backlog", 10_000)  # no worker delivers here unless a test drains
    return backfill(
        env.rt.ledger, env.rt.config, "sf-contacts", env.rt.connector("salesforce"), **kwargs
    )


def test_a_backfill_records_the_history_once_and_a_second_finds_it_there(env: Env) -> None:
    ids = [
        env.salesforce.add_record("Contact", LastName=f"B{i}", Email=f"b{i}@example.com")
        for i in range(450)
    ]
    dry = _backfill(env, dry_run=True)
    assert (dry.records, dry.recorded) == (450, 0) and env.events("sf-contacts") == []
    done = _backfill(env)
    assert done.done and (done.records, done.recorded, done.duplicates) == (450, 450, 0)
    assert done.summary()["pages"] == done.pages >= 3
    assert sorted(json.loads(e["body"])["Id"] for e in env.events("sf-contacts")) == sorted(ids)
    again = _backfill(env)
    assert (again.recorded, again.duplicates) == (0, 450)
    assert env.rt.ledger.polls.cursor("sf-contacts") is None  # the live cursor is its own


def test_an_interrupted_backfill_resumes_where_it_stood(env: Env) -> None:
    for i in range(900):
        env.salesforce.add_record("Contact", LastName=f"R{i}", Email=f"r{i}@example.com")
    seen: list[int] = []

    def interrupt(progress: Any) -> None:
        seen.append(progress.records)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _backfill(env, on_progress=interrupt)
    first = len(env.events("sf-contacts"))
    assert 0 < first < 900
    done = _backfill(env)
    assert done.resumed and done.done
    assert done.recorded == 900 and len(env.events("sf-contacts")) == 900
    assert done.records >= 900  # the page it stood in may be listed again (deduplicated)


def test_a_backfill_waits_while_its_deliveries_are_backlogged(env: Env) -> None:
    for i in range(300):
        env.salesforce.add_record("Contact", LastName=f"W{i}", Email=f"w{i}@example.com")
    waits: list[float] = []
    backlogs: list[int] = []  # pending deliveries whenever the backfill waited

    def drain_when_waiting(seconds: float) -> None:
        waits.append(seconds)
        ledger = env.rt.ledger
        backlogs.append(int(ledger.connection_state("target")["counts"].get("pending", 0)))
        from workers.delivery import run_delivery

        env.rt._connectors["target"] = HttpConnector(
            env.rt.config.connections["target"],
            env.rt.settings.environ,
            transport=FakeTransport(HttpCrm()),
        )
        while (message := ledger.redis.rpop(ledger.queue.key)) is not None:
            assert isinstance(message, bytes)
            run_delivery(env.rt, json.loads(json.loads(message)["body"])[0][0])

    done = _backfill(env, max_backlog=50, sleep=drain_when_waiting)
    assert done.recorded == 300 and waits  # it waited for the first pages' deliveries
    # a page holds 200 records, but no more than one chunk goes in past the limit: a live
    # webhook's write never finds a whole page of backfilled writes in front of it
    assert max(backlogs) <= 50 + ACCEPT_CHUNK < 200


def test_a_webhook_and_a_poll_of_the_same_change_are_one_event(
    write_config: WriteConfig, key_prefix: str
) -> None:
    """A source that receives webhooks and polls: a webhook whose body is the changed record
    gets the change id its listing gets, so the poll that lists it finds it recorded."""
    from hubtest import accept_webhook

    config = CONFIG.replace(
        "  crm-changes:\n",
        "  crm-changes:\n    verify: {scheme: none}\n    allow_unsigned: true\n",
    )
    settings = make_settings(write_config(config), key_prefix, redis_url="redis://unused", **ENV)
    env = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    _start_before(env, "crm-changes")
    env.crm.state.handle("PUT", "", "contacts", "k1", b'{"n": 1}', True, None, False)
    [listed] = env.crm.state._listing("contacts", {"updated_since": ["0"]}).payload["data"]
    [hooked] = accept_webhook(env.rt.config, env.rt.ledger, listed, source="crm-changes")
    run = env.poll("crm-changes")
    assert (run.records, run.recorded, run.duplicates) == (1, 0, 1)
    assert [e["id"] for e in env.events("crm-changes")] == [hooked.id]
    env.rt.close()


def test_a_backfill_takes_at_most_its_share_of_the_connections_rate_limit(
    write_config: WriteConfig, key_prefix: str
) -> None:
    config = CONFIG.replace(
        "    login_url: https://login.salesforce.com\n",
        "    login_url: https://login.salesforce.com\n"
        "    rate_limit: {requests: 4, per_seconds: 60}\n",
    )
    settings = make_settings(write_config(config), key_prefix, redis_url="redis://unused", **ENV)
    env = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    for i in range(700):
        env.salesforce.add_record("Contact", LastName=f"S{i}", Email=f"s{i}@example.com")
    now = [time.time()]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    done = _backfill(env, share=0.5, clock=lambda: now[0], sleep=sleep)
    assert done.recorded == 700 and done.pages >= 4
    # 2 of the connection's 4 requests a minute: the third listing waited ~30 s for its share
    # (the connection's own limiter alone would have let 4 through at once)
    assert max(waits) >= 25
    env.rt.close()
