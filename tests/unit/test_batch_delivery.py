"""Batched delivery end to end (workers/delivery.py with Ledger.claim_batch and the HubSpot
connector): the ledger on fakeredis, the configuration from YAML, events recorded as the
receiver records them, and the fake HubSpot the package ships (connectors/fakes/hubspot/)
in-process behind its httpx transport.

Where a test needs an answer the fake does not give by itself, a script answers instead, as
HubSpot documents (cited next to each answer):
  [upsert]  https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
            and HubSpot/hubspot-api-python hubspot/crm/contacts/models/
            simple_public_upsert_object.py and
            batch_response_simple_public_upsert_object_with_errors.py
            (status COMPLETE, results[].new, numErrors, errors[] of StandardError)
  [errors]  https://developers.hubspot.com/docs/api-reference/error-handling: the error body
            {status, message, correlationId, category}, VALIDATION_ERROR's "Property values
            were not valid: [...]" message, 207 multi-status for batch writes with an
            objectWriteTraceId per input, 502/503 "pause, then retry"
"""

from __future__ import annotations

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

from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.hubspot.properties import PropError
from connectors.fakes.hubspot.texts import property_error_body
from connectors.fakes.transport import FakeTransport
from connectors.hubspot import HubSpotConnector
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
  hubspot:
    connector: hubspot
    base_url: https://api.hubapi.com
    auth: {type: bearer, token_env: HUBSPOT_TOKEN}
    rate_limit: {requests: 100, per_seconds: 10}
    options: {batch_size: BATCH_SIZE}
mappings:
  customer-to-contact:
    source: stripe
    when: {event_type: [customer.created, customer.updated]}
    connection: hubspot
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, transform: [email], required: true}
      firstname: {from: data.object.name, required: true}
      lifecyclestage: data.object.metadata.stage
"""
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
ENV = {"STRIPE_WEBHOOK_SECRET": "whsec_test_0123456789", "HUBSPOT_TOKEN": TOKEN}


class HubSpot:
    """The fake HubSpot in-process (contacts by email; a lifecyclestage outside HubSpot's
    options is a VALIDATION_ERROR, 207 for that input alone when every input has its trace id),
    every request kept. `script`: consulted first; answers instead when it returns one."""

    def __init__(self) -> None:
        self.app = FakeHubSpot(private_app_token=TOKEN)
        self.requests: list[httpx.Request] = []
        self.script: Callable[[httpx.Request], httpx.Response | None] | None = None
        self._transport = FakeTransport(self.app)

    @property
    def contacts(self) -> dict[str, dict[str, str]]:
        """email -> properties."""
        return {r["properties"]["email"]: r["properties"] for r in self.app.records("contacts")}

    def upserts(self) -> list[list[dict[str, Any]]]:
        return [
            json.loads(r.content)["inputs"]
            for r in self.requests
            if r.url.path == "/crm/v3/objects/contacts/batch/upsert"
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script is not None and (answer := self.script(request)) is not None:
            return answer
        return self._transport.handle_request(request)


def whole_batch_400(request: httpx.Request) -> httpx.Response | None:
    """HubSpot failing a whole batch for one invalid input: 400 VALIDATION_ERROR [errors] (the
    fake answers 207 for that input alone when each input has a trace id, as ours do)."""
    inputs = json.loads(request.content)["inputs"]
    bad = [i for i in inputs if i["properties"].get("lifecyclestage") == "customerx"]
    if len(inputs) < 2 or not bad:
        return None
    problems = [
        PropError(
            "lifecyclestage", "INVALID_OPTION", "customerx was not one of the allowed options"
        )
        for _ in bad
    ]
    return httpx.Response(400, json=property_error_body(problems, 12345678))


class Env:
    def __init__(self, rt: WorkerRuntime, fake: HubSpot) -> None:
        self.rt = rt
        self.fake = fake
        self.n = 0

    def receive(self, email: str, name: str = "Ada Lovelace", stage: str = "customer") -> str:
        """Record a Stripe customer.updated as the receiver would; its delivery id."""
        self.n += 1
        body = stripe_event(
            f"evt_{self.n}",
            type_="customer.updated",
            email=email,
            name=name,
            metadata={"stage": stage},
        )
        body["created"] += self.n  # each event newer than the last
        [event] = accept_webhook(self.rt.config, self.rt.ledger, body)
        [delivery] = event.deliveries
        return delivery.id

    def run(self, delivery_id: str) -> str:
        return run_delivery(self.rt, delivery_id)

    def state(self, delivery_id: str) -> str:
        return self.rt.ledger.raw_delivery(delivery_id)["state"]

    def view(self, delivery_id: str) -> dict[str, Any]:
        view = self.rt.ledger.delivery(delivery_id, history=True)
        assert view is not None
        return view

    def messages(self) -> list[str]:
        """Delivery ids of the queued Celery messages, oldest first (see test_ledger)."""
        ids = []
        for item in reversed(self.rt.ledger.redis.lrange(self.rt.ledger.queue.key, 0, -1)):
            message = json.loads(item)
            assert message["headers"]["task"] == "crmhub.deliver"
            args, _, _ = json.loads(message["body"])
            ids.append(args[0])
        return ids

    def conn(self) -> dict[str, Any]:
        return self.rt.ledger.connection_state("hubspot")


def build_env(
    write_config: WriteConfig, key_prefix: str, batch_size: int = 100, drain_max: int = 1
) -> Env:
    path = write_config(CONFIG.replace("BATCH_SIZE", str(batch_size)))
    # one batch per run_delivery here unless a test says otherwise; the drain (a task going on
    # with the connection's next batches) has its own tests in test_drain.py and at the end
    settings = make_settings(
        path, key_prefix, redis_url="redis://unused", CRMHUB_DRAIN_MAX=str(drain_max), **ENV
    )
    rt = WorkerRuntime.build(settings, client=fakeredis.FakeRedis())
    fake = HubSpot()
    rt._connectors["hubspot"] = HubSpotConnector(
        rt.config.connections["hubspot"],
        settings.environ,
        transport=httpx.MockTransport(fake),
        tokens=rt.ledger.tokens,
    )
    return Env(rt, fake)


@pytest.fixture
def env(write_config: WriteConfig, key_prefix: str) -> Iterator[Env]:
    e = build_env(write_config, key_prefix)
    yield e
    e.rt.close()


def emails(n: int) -> list[str]:
    return [f"user{i}@example.com" for i in range(n)]


# one request for many deliveries --------------------------------------------------------
def test_ten_waiting_deliveries_go_out_in_one_batch_upsert(env: Env) -> None:
    ids = [env.receive(e, name=f"User {i}") for i, e in enumerate(emails(10))]
    assert env.messages() == ids

    assert env.run(ids[0]) == "delivered"
    [inputs] = env.fake.upserts()
    assert len(env.fake.requests) == 1
    assert sorted(i["id"] for i in inputs) == sorted(emails(10))
    assert all(i["idProperty"] == "email" for i in inputs)
    assert {e: p["firstname"] for e, p in env.fake.contacts.items()} == {
        e: f"User {i}" for i, e in enumerate(emails(10))
    }
    for d in ids:
        view = env.view(d)
        assert view["state"] == "delivered" and view["attempts"] == 1
        [attempt] = view["attempt_history"]
        assert (attempt["outcome"], attempt["operation"], attempt["status"]) == (
            "delivered",
            "created",
            200,
        )
    assert env.conn()["counts"]["delivered"] == 10
    assert env.conn()["counts"]["in_flight"] == 0

    # the batch withdrew its companions' messages: what is left is the message of the one the
    # worker ran (called directly here, so no broker took it off the queue), not a task per
    # companion; one that slipped through (taken by a broker meanwhile) is still a no-op
    assert env.messages() == [ids[0]]
    for d in ids[1:]:
        assert env.run(d) == "skip"
    assert len(env.fake.requests) == 1
    assert all(env.view(d)["attempts"] == 1 for d in ids)


def test_batch_size_bounds_how_many_go_together(write_config: WriteConfig, key_prefix: str) -> None:
    env = build_env(write_config, key_prefix, batch_size=4)
    ids = [env.receive(e) for e in emails(10)]
    assert env.run(ids[0]) == "delivered"
    assert [len(inputs) for inputs in env.fake.upserts()] == [4]
    assert sorted(env.state(d) for d in ids) == ["delivered"] * 4 + ["pending"] * 6
    waiting = [d for d in ids if env.state(d) == "pending"]
    assert env.run(waiting[0]) == "delivered"
    assert [len(inputs) for inputs in env.fake.upserts()] == [4, 4]
    env.rt.close()


def test_two_writes_to_one_contact_are_never_in_the_same_batch(env: Env) -> None:
    first = env.receive("ada@example.com", name="Ada")
    bob = env.receive("bob@example.com", name="Bob")
    second = env.receive("Ada@Example.com", name="Ada Lovelace")
    cy = env.receive("cy@example.com", name="Cy")
    # not its turn (the first is waiting); its message is not wasted though: it takes the
    # waiting deliveries of the connection and object as one batch
    assert env.run(second) == "skip"
    [batch] = env.fake.upserts()
    assert sorted(i["id"] for i in batch) == [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
    ]
    assert {env.state(d) for d in (first, bob, cy)} == {"delivered"}
    assert env.state(second) == "pending"
    # its message is published only now that it is the contact's next write
    assert env.messages()[-1] == second and env.messages().count(second) == 1

    # the first's own message is stale now (already sent); it takes the next waiting write
    assert env.run(first) == "skip"
    assert env.state(second) == "delivered"
    [_, later] = env.fake.upserts()
    assert [(i["id"], i["properties"]["firstname"]) for i in later] == [
        ("ada@example.com", "Ada Lovelace")
    ]
    assert env.fake.contacts["ada@example.com"]["firstname"] == "Ada Lovelace"


# one bad record in a batch --------------------------------------------------------------
@pytest.mark.parametrize("multi_status", [False, True], ids=["400 whole batch", "207"])
def test_a_record_hubspot_rejects_is_dead_and_the_others_are_delivered(
    env: Env, multi_status: bool
) -> None:
    if not multi_status:
        env.fake.script = whole_batch_400
    ids = [env.receive(e) for e in emails(2)]
    bad = env.receive("bad@example.com", stage="customerx")
    ids += [env.receive(e) for e in emails(5)[2:]]
    assert env.run(ids[0]) == "delivered"

    assert env.state(bad) == "dead"
    dead = env.view(bad)["dead"]
    assert dead["category"] == "rejected_by_target"
    assert [p["field"] for p in dead["record"]["problems"]] == ["lifecyclestage"]
    assert dead["record"]["record"]["match"] == {"field": "email", "value": "bad@example.com"}
    assert {env.state(d) for d in ids} == {"delivered"}
    assert sorted(env.fake.contacts) == sorted(emails(5))
    assert env.rt.ledger.dead_ids() == [bad]
    assert env.conn()["breaker"] == {}  # a rejected record is not an outage
    first_batch = env.fake.upserts()[0]
    assert len(first_batch) == 6
    # 207: the one request was enough; 400: every record again on its own
    assert len(env.fake.requests) == (1 if multi_status else 7)


@pytest.mark.parametrize(
    "field, email, name, says",
    [
        (
            "firstname",
            "bad@example.com",
            "Ada \ud800",
            "firstname: cannot be encoded as UTF-8 text: \\ud800 (a lone surrogate) at character 4",
        ),
        # the match key (and so the record key) too; the email transform is first to object
        ("email", "bad\udfff@example.com", "Ada", "email: not a valid email address"),
    ],
    ids=["a field", "the match key"],
)
def test_a_value_utf8_cannot_encode_is_dead_at_once_and_its_companions_go_out(
    env: Env, field: str, email: str, name: str, says: str
) -> None:
    """JSON's "\ud800" decodes to a lone surrogate, which no request can carry: a data error
    of this record on its first attempt, never an internal error retried for the batch."""
    ids = [env.receive(e) for e in emails(2)]
    bad = env.receive(email, name=name)
    ids += [env.receive(e) for e in emails(5)[2:]]
    assert env.run(ids[0]) == "delivered"

    view = env.view(bad)
    assert (view["state"], view["attempts"]) == ("dead", 1)
    dead = view["dead"]
    assert dead["category"] == "mapping"
    [problem] = dead["record"]["problems"]
    assert problem["field"] == field
    assert says in dead["error"]
    [attempt] = view["attempt_history"]
    assert "next_attempt_at" not in attempt

    # the five others went out in the same run, in one request that never held the bad one
    [batch] = env.fake.upserts()
    assert sorted(i["id"] for i in batch) == sorted(emails(5))
    assert {env.state(d) for d in ids} == {"delivered"}
    assert all(env.view(d)["attempts"] == 1 for d in ids)
    assert env.rt.ledger.dead_ids() == [bad]
    assert env.conn()["counts"].get("scheduled", 0) == 0
    assert env.conn()["breaker"] == {}


# the whole batch failing ----------------------------------------------------------------
def test_a_failed_batch_request_counts_once_toward_the_circuit_breaker(env: Env) -> None:
    env.fake.app.fault(mode="error5xx", status=503)
    ids = [env.receive(e) for e in emails(10)]
    assert env.run(ids[0]) == "retry"
    assert len(env.fake.requests) == 1
    assert {env.state(d) for d in ids} == {"scheduled"}
    assert all(env.view(d)["attempts"] == 1 for d in ids)
    # one request failed, not ten: the circuit (5 in a row) stays closed
    breaker = env.conn()["breaker"]
    assert breaker.get("failures") == "1"
    assert breaker.get("state") != "open"


# a paused connection --------------------------------------------------------------------
def test_a_pause_after_the_first_claim_keeps_the_others_unclaimed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [env.receive(e) for e in emails(5)]
    claim = env.rt.ledger.claim

    def claim_then_an_operator_pauses(*args: Any, **kwargs: Any) -> Any:
        outcome = claim(*args, **kwargs)
        env.rt.ledger.pause("hubspot", reason="maintenance", by="ops", now=time.time())
        return outcome

    monkeypatch.setattr(env.rt.ledger, "claim", claim_then_an_operator_pauses)
    assert env.run(ids[0]) == "delivered"
    monkeypatch.undo()
    assert [[i["id"] for i in inputs] for inputs in env.fake.upserts()] == [[emails(5)[0]]]
    assert [env.state(d) for d in ids[1:]] == ["held"] * 4
    assert all(env.view(d)["attempts"] == 0 for d in ids[1:])

    # once resumed they go out together
    assert env.rt.ledger.resume("hubspot", time.time()) == 4
    assert env.run(ids[1]) == "delivered"
    assert [len(inputs) for inputs in env.fake.upserts()] == [1, 4]
    assert {env.state(d) for d in ids} == {"delivered"}


def test_deliveries_of_a_paused_connection_are_held_without_a_request(env: Env) -> None:
    first = env.receive("ada@example.com")
    env.rt.ledger.pause("hubspot", reason="maintenance", by="ops", now=time.time())
    later = [env.receive(e) for e in emails(3)]  # held as they arrive
    assert env.run(first) == "held"
    assert [env.state(d) for d in [first, *later]] == ["held"] * 4
    assert [env.run(d) for d in later] == ["skip"] * 3
    assert env.fake.requests == []


# with the drain ---------------------------------------------------------------------------
def test_with_the_drain_batches_follow_one_another_in_record_order(
    write_config: WriteConfig, key_prefix: str
) -> None:
    env = build_env(write_config, key_prefix, batch_size=2, drain_max=50)
    try:
        first = env.receive("ada@example.com", name="Ada")
        others = [env.receive(e, name="Other") for e in ("bob@example.com", "cy@example.com")]
        second = env.receive("Ada@Example.com", name="Ada Lovelace")
        assert env.run(first) == "delivered"
        # one task: its batch, then the next ready ones as another batch; Ada's second write
        # only once her first is done, never in the same request
        assert [env.state(d) for d in (first, *others, second)] == ["delivered"] * 4
        batches = env.fake.upserts()
        assert len(batches) == 2
        for inputs in batches:
            ids = [i["id"] for i in inputs]
            assert len(ids) == len(set(ids))
        ada = [
            i["properties"]["firstname"]
            for inputs in batches
            for i in inputs
            if i["id"] == "ada@example.com"
        ]
        assert ada == ["Ada", "Ada Lovelace"]
        assert env.fake.contacts["ada@example.com"]["firstname"] == "Ada Lovelace"
    finally:
        env.rt.close()
