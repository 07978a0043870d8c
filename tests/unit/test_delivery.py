"""run_delivery end to end (workers/delivery.py): the ledger on fakeredis, the configuration
from YAML, events recorded as the receiver records them (core.intake.build_events), and the
target CRM behind an httpx.MockTransport.

Error bodies mimic HubSpot's documented error shape
(https://developers.hubspot.com/docs/faq/api-error-responses) and Salesforce's REST errors
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from conftest import make_settings
from hubtest import accept_webhook, stripe_event

from connectors.http import HttpConnector
from core.alerting.service import evaluate_alerts
from core.alerting.sinks import sink_names
from core.errors import LedgerUnavailable
from workers.delivery import run_delivery
from workers.runtime import WorkerRuntime

WriteConfig = Callable[..., Path]  # the conftest fixture

CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  crm:
    connector: http
    base_url: https://crm.example.com/api/v3
    auth: {type: bearer, token_env: CRM_TOKEN}
    retry: {base_seconds: 10, max_seconds: 600, give_up_after_seconds: 86400}
mappings:
  customer-to-contact:
    source: stripe
    when: {event_type: [customer.created, customer.updated]}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, transform: [email], required: true}
      firstname: {from: data.object.name, required: true}
      lifecyclestage: {const: customer, owner: target}
"""
ENV = {"STRIPE_WEBHOOK_SECRET": "whsec_test_0123456789", "CRM_TOKEN": "pat-na1-test-token"}
ALERT_URL = "https://hooks.example.com/oncall"

HUBSPOT_400 = {
    "status": "error",
    "message": "Property values were not valid: firstname is longer than 100 characters",
    "errors": [{"message": "firstname is longer than 100 characters", "in": "firstname"}],
    "category": "VALIDATION_ERROR",
    "correlationId": "a43683b0-5717-4ceb-80b4-104d02915d8c",
}
SALESFORCE_401 = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


class Target:
    """The CRM: records by path; `script` answers instead when set (per request)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.script: Callable[[httpx.Request], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script is not None:
            return self.script(request)
        path = request.url.raw_path.decode()
        if request.method == "GET":
            if path not in self.records:
                return httpx.Response(404, json={"status": "error", "message": "Not Found"})
            return httpx.Response(200, json=self.records[path])
        created = path not in self.records
        self.records[path] = {**self.records.get(path, {}), **json.loads(request.content)}
        return httpx.Response(
            201 if created else 200, json={"id": "5102", "properties": self.records[path]}
        )

    def writes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method != "GET"]


class Env:
    def __init__(self, rt: WorkerRuntime, target: Target) -> None:
        self.rt = rt
        self.target = target
        self.n = 0

    def receive(self, email: str = "ada@example.com", **object_fields: Any) -> str:
        """Record a Stripe customer.updated event as the receiver would; its delivery id."""
        self.n += 1
        body = stripe_event(f"evt_{self.n}", type_="customer.updated", email=email, **object_fields)
        body["created"] += self.n  # each event newer than the last
        [event] = accept_webhook(self.rt.config, self.rt.ledger, body)
        [delivery] = event.deliveries
        return delivery.id

    def run(self, delivery_id: str) -> str:
        return run_delivery(self.rt, delivery_id)

    def view(self, delivery_id: str) -> dict[str, Any]:
        view = self.rt.ledger.delivery(delivery_id, history=True)
        assert view is not None
        return view

    def raw(self, delivery_id: str) -> dict[str, str]:
        return self.rt.ledger.raw_delivery(delivery_id)

    def conn(self) -> dict[str, Any]:
        return self.rt.ledger.connection_state("crm")

    def alerts(self) -> list[dict[str, Any]]:
        """The alert evaluator's run (as the scheduler's task does), then the outbox."""
        settings = self.rt.settings
        evaluate_alerts(
            self.rt.ledger,
            self.rt.config,
            sinks=sink_names(self.rt.config.alerts, settings.alert_webhook_url),
        )
        outbox = self.rt.ledger.alerts
        return [json.loads(a) for a in outbox.redis.lrange(outbox.key, 0, -1)]


def build_env(
    write_config: WriteConfig, key_prefix: str, config: str = CONFIG, **extra_env: str
) -> Env:
    # one delivery per run_delivery here, each message's own path; the drain (a task going on
    # with the connection's next deliveries) has its tests in test_drain.py
    extra_env = {"CRMHUB_DRAIN_MAX": "1", **extra_env}
    settings = make_settings(
        write_config(config), key_prefix, redis_url="redis://unused", **ENV, **extra_env
    )
    rt = WorkerRuntime.build(settings, client=fakeredis.FakeRedis())
    target = Target()
    rt._connectors["crm"] = HttpConnector(
        rt.config.connections["crm"], settings.environ, transport=httpx.MockTransport(target)
    )
    return Env(rt, target)


@pytest.fixture
def env(write_config: WriteConfig, key_prefix: str) -> Iterator[Env]:
    e = build_env(write_config, key_prefix, CRMHUB_ALERT_WEBHOOK_URL=ALERT_URL)
    yield e
    e.rt.close()


def respond(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def test_the_connections_rate_limit_holds_back_what_is_over_it(
    write_config: WriteConfig, key_prefix: str
) -> None:
    # 2 requests in any 10 s: two go at once, the third would wait until 10 s after the
    # first finished, longer than a worker waits in place (1 s), so it is scheduled for then
    limited = CONFIG.replace(
        "    retry: {base_seconds",
        "    rate_limit: {requests: 2, per_seconds: 10}\n    retry: {base_seconds",
    )
    env = build_env(write_config, key_prefix, config=limited)
    try:
        first, second, third = (env.receive(f"user{i}@example.com", name="Ada") for i in range(3))
        before = time.time()
        assert [env.run(d) for d in (first, second, third)] == [
            "delivered",
            "delivered",
            "deferred",
        ]
        assert env.raw(third)["state"] == "scheduled"
        assert before + 10 <= int(env.raw(third)["due_at"]) / 1000 <= time.time() + 10
        assert len(env.target.writes()) == 2
    finally:
        env.rt.close()


# success --------------------------------------------------------------------------------
def test_a_successful_write_is_delivered_with_the_attempt_recorded(env: Env) -> None:
    d = env.receive("Ada@Example.com", name="Ada Lovelace")
    before = time.time()
    assert env.run(d) == "delivered"

    get, put = env.target.requests
    assert get.method == "GET"  # a target-owned field: read once
    assert put.method == "PUT"
    assert put.url.raw_path == b"/api/v3/contacts/ada%40example.com"
    assert put.headers["authorization"] == "Bearer pat-na1-test-token"
    assert json.loads(put.content) == {
        "email": "ada@example.com",
        "firstname": "Ada Lovelace",
        "lifecyclestage": "customer",
    }

    view = env.view(d)
    assert view["state"] == "delivered" and view["attempts"] == 1
    [attempt] = view["attempt_history"]
    assert attempt["outcome"] == "delivered"
    assert attempt["status"] == 201 and attempt["operation"] == "created"
    assert 0 <= attempt["duration_ms"] < 5000
    assert before <= attempt["at"] <= time.time()
    assert json.loads(attempt["excerpt"])["id"] == "5102"  # the target's answer
    assert "error" not in attempt and "next_attempt_at" not in attempt
    state = env.conn()
    assert state["counts"]["delivered"] == 1 and state["counts"]["pending"] == 0
    assert state["last"]["success_at"]


def test_a_target_owned_value_is_kept_and_the_skip_recorded(env: Env) -> None:
    env.target.records["/api/v3/contacts/ada%40example.com"] = {
        "email": "ada@example.com",
        "lifecyclestage": "opportunity",
    }
    d = env.receive()
    assert env.run(d) == "delivered"
    put = env.target.writes()[0]
    assert "lifecyclestage" not in json.loads(put.content)
    [attempt] = env.view(d)["attempt_history"]
    assert attempt["operation"] == "updated"
    assert attempt["skipped_fields"] == ["lifecyclestage"]


def test_a_duplicate_message_for_a_delivered_delivery_does_nothing(env: Env) -> None:
    d = env.receive()
    assert env.run(d) == "delivered"
    requests, view = len(env.target.requests), env.view(d)
    assert env.run(d) == "skip"
    assert len(env.target.requests) == requests
    assert env.view(d) == view


def test_a_message_for_an_unknown_delivery_is_ignored(env: Env) -> None:
    assert env.run("dlv_000000000000ffffffffffff") == "missing"
    assert env.target.requests == []


def test_writes_for_one_record_go_out_in_order(env: Env) -> None:
    first = env.receive(name="Ada")
    second = env.receive(name="Ada Lovelace")
    assert env.run(second) == "skip"  # not its turn yet
    assert env.target.writes() == []
    assert env.run(first) == "delivered"
    assert env.run(second) == "delivered"
    assert [json.loads(r.content)["firstname"] for r in env.target.writes()] == [
        "Ada",
        "Ada Lovelace",
    ]


# failures -------------------------------------------------------------------------------
def test_a_500_is_scheduled_for_a_retry_and_counts_toward_the_breaker(env: Env) -> None:
    env.target.script = respond(500, {"status": "error", "message": "internal error"})
    d = env.receive()
    before = time.time()
    assert env.run(d) == "retry"
    view = env.view(d)
    assert view["state"] == "scheduled"
    [attempt] = view["attempt_history"]
    assert attempt["outcome"] == "retry" and attempt["status"] == 500
    assert "internal error" in attempt["excerpt"]
    assert "HTTP 500" in attempt["error"]
    # base 10 s, first attempt: 5..10 s from now (equal jitter)
    assert before + 5 <= attempt["next_attempt_at"] <= time.time() + 10
    assert int(env.raw(d)["due_at"]) == int(attempt["next_attempt_at"] * 1000)
    state = env.conn()
    assert state["breaker"]["failures"] == "1"
    assert "HTTP 500" in state["last"]["failure"]
    assert env.rt.ledger.dead_ids() == []


def test_a_503_retry_after_is_honoured(env: Env) -> None:
    env.target.script = respond(503, {"message": "maintenance"}, {"Retry-After": "900"})
    d = env.receive()
    before = time.time()
    assert env.run(d) == "retry"
    due = int(env.raw(d)["due_at"]) / 1000
    assert before + 899 <= due <= time.time() + 900


def test_a_400_is_dead_with_the_targets_answer_in_the_dead_letter(env: Env) -> None:
    env.target.script = respond(400, HUBSPOT_400)
    d = env.receive()
    assert env.run(d) == "dead"
    view = env.view(d)
    assert view["state"] == "dead"
    dead = view["dead"]
    assert dead["category"] == "rejected_by_target"
    assert "HTTP 400" in dead["error"]
    assert dead["record"]["response"]["status"] == 400
    assert json.loads(dead["record"]["response"]["excerpt"]) == HUBSPOT_400
    assert dead["record"]["record"]["fields"] == {
        "email": "ada@example.com",
        "firstname": "Ada Lovelace",
        "lifecyclestage": "customer",
    }
    assert dead["record"]["record"]["match"] == {"field": "email", "value": "ada@example.com"}
    assert env.rt.ledger.dead_ids() == [d]
    # a rejected record says nothing about the target's health
    assert env.conn()["breaker"] == {}


def test_a_mapping_failure_is_dead_with_every_problem_and_no_request(env: Env) -> None:
    d = env.receive(email="", name=None)
    assert env.run(d) == "dead"
    assert env.target.requests == []
    dead = env.view(d)["dead"]
    assert dead["category"] == "mapping"
    problems = dead["record"]["problems"]
    assert {p["field"] for p in problems} == {"email", "firstname"}
    assert all("missing or empty" in p["problem"] or "match key" in p["problem"] for p in problems)
    assert dead["record"]["record"] is None
    [attempt] = env.view(d)["attempt_history"]
    assert attempt["problems"] == problems


def test_a_mapping_removed_from_the_configuration_is_dead_for_replay_later(env: Env) -> None:
    d = env.receive()
    env.rt.config = dataclasses.replace(env.rt.config, mappings={})
    assert env.run(d) == "dead"
    dead = env.view(d)["dead"]
    assert dead["category"] == "mapping"
    assert "customer-to-contact" in dead["error"]


def test_a_bug_in_the_hub_is_retried_and_does_not_trip_the_breaker(env: Env) -> None:
    def crash(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("unexpected None in connector")

    env.target.script = crash
    d = env.receive()
    assert env.run(d) == "retry"
    assert env.view(d)["state"] == "scheduled"
    assert "unexpected None" in env.view(d)["attempt_history"][0]["error"]
    assert env.conn()["breaker"] == {}


def test_a_429_defers_without_using_an_attempt_and_cools_the_connection(env: Env) -> None:
    env.target.script = respond(
        429,
        {"message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT"},
        {"Retry-After": "30"},
    )
    first, second = env.receive("ada@example.com"), env.receive("bob@example.com")
    before = time.time()
    assert env.run(first) == "deferred"
    view = env.view(first)
    assert view["state"] == "scheduled" and view["attempts"] == 0
    assert view["attempt_history"][0]["outcome"] == "deferred"
    cooldown = env.conn()["cooldown_until_ms"] / 1000
    assert before + 29 <= cooldown <= time.time() + 30
    assert env.conn()["breaker"] == {}

    # the next delivery to the connection waits out the cooldown without calling the target
    calls = len(env.target.requests)
    assert env.run(second) == "deferred"
    assert len(env.target.requests) == calls
    assert env.view(second)["state"] == "scheduled"
    assert int(env.raw(second)["due_at"]) == env.conn()["cooldown_until_ms"]


def test_an_attempt_whose_lease_expired_does_not_record_its_outcome(env: Env) -> None:
    d = env.receive()

    def slow(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            # the worker stalls past its lease; the sweeper hands the delivery back
            env.rt.ledger.sweep(
                time.time() + env.rt.settings.lease_seconds + 1, republish_after_seconds=60
            )
        return httpx.Response(404 if request.method == "GET" else 201, json={})

    env.target.script = slow
    assert env.run(d) == "lost"
    view = env.view(d)
    assert view["state"] == "pending"
    assert [a["outcome"] for a in view["attempt_history"]] == ["lease_expired"]


def test_losing_redis_mid_attempt_surfaces_as_ledger_unavailable(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = env.receive()

    def down(event_ids: list[str]) -> list[dict[str, str]]:
        raise LedgerUnavailable("Redis is unreachable: Error 111 connecting to redis:6379")

    monkeypatch.setattr(env.rt.ledger, "raw_events", down)
    # not a failure of the delivery to classify: the task fails, and the sweeper takes the
    # delivery back when its lease ends
    with pytest.raises(LedgerUnavailable):
        env.run(d)
    monkeypatch.undo()
    assert env.view(d)["state"] == "in_flight"
    assert env.target.requests == []


# auth failure ---------------------------------------------------------------------------
def test_a_401_holds_pauses_and_alerts_once_across_concurrent_deliveries(env: Env) -> None:
    first, second, third = (env.receive(f"user{i}@example.com") for i in range(3))
    outcomes: dict[str, str] = {}

    def refuse(request: httpx.Request) -> httpx.Response:
        if len(env.target.requests) == 1:
            # another worker runs the second delivery while the first is still in flight
            outcomes[second] = env.run(second)
        return httpx.Response(401, json=SALESFORCE_401)

    env.target.script = refuse
    outcomes[first] = env.run(first)
    assert outcomes == {first: "held", second: "held"}
    assert len(env.target.requests) == 2

    # later deliveries are held at claim: no call to the target with bad credentials
    assert env.run(third) == "held"
    assert len(env.target.requests) == 2
    assert {env.view(d)["state"] for d in (first, second, third)} == {"held"}

    pause = env.conn()["pause"]
    assert pause["reason"] == "auth" and pause["by"] == "crmhub"
    assert "HTTP 401" in pause["detail"]
    env.alerts()  # the evaluator runs on every scheduler tick: once is one notice
    [alert] = env.alerts()
    assert alert["alert"]["kind"] == "connection_paused"
    assert alert["alert"]["connection"] == "crm"
    assert "crmhub resume crm" in alert["alert"]["details"]["command"]
    assert "HTTP 401" in alert["alert"]["details"]["error"]
    assert "pat-na1-test-token" not in json.dumps(alert)

    # resuming with fixed credentials delivers everything held, in order
    env.target.script = None
    assert env.rt.ledger.resume("crm", time.time()) == 3
    assert [env.run(d) for d in (first, second, third)] == ["delivered"] * 3


def test_without_an_alert_url_a_pause_still_happens_but_nothing_is_queued(
    write_config: WriteConfig, key_prefix: str
) -> None:
    e = build_env(write_config, key_prefix)
    e.target.script = respond(
        403, [{"message": "insufficient access", "errorCode": "INSUFFICIENT_ACCESS"}]
    )
    assert e.run(e.receive()) == "held"
    assert e.conn()["pause"]["reason"] == "auth"
    assert e.alerts() == []
