"""The drain (workers/delivery.py `_drain`, workers/drain.py, core/ledger/claim_next.lua): a
task that finished its own delivery goes on with the connection's next ready deliveries, each
claimed as its own message would claim it. The ledger on fakeredis (real Lua), events recorded
as the receiver records them, the generic http connector in front of an httpx.MockTransport.

Each per-record rule has its test here: a record's writes stay in arrival order, a record with
a write in flight elsewhere is left alone, a pause, a 429's cooldown, an open circuit or the
rate limit stop the drain at once and leave the rest untouched, a failure is classified and
scheduled alone, and the messages of drained deliveries cost nothing when they arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import httpx
import pytest
from conftest import make_settings
from hubtest import CRM_CONFIG, CRM_ENV, accept_webhook, stripe_event

from connectors.http import HttpConnector
from core.errors import ConfigError
from core.ledger.deliveries import event_of_folded
from core.settings import Settings
from core.vocabulary import ClaimStatus, Reason
from workers.delivery import run_delivery
from workers.drain import Budget, goes_on, objects_of
from workers.runtime import WorkerRuntime

WriteConfig = Callable[..., Path]  # the conftest fixture
Answer = Callable[[httpx.Request], httpx.Response | None]


class Env:
    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.requests: list[httpx.Request] = []
        self.script: Answer | None = None  # answers instead of the default 200 when it returns
        self.n = 0

    def target(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script is not None and (answer := self.script(request)) is not None:
            return answer
        return httpx.Response(200, json={"id": "1", **json.loads(request.content)})

    def receive(self, email: str, name: str = "Ada") -> str:
        """Record a Stripe customer.updated as the receiver would; its delivery id."""
        self.n += 1
        body = stripe_event(f"evt_{self.n}", type_="customer.updated", email=email, name=name)
        body["created"] += self.n  # each event newer than the last
        [event] = accept_webhook(self.rt.config, self.rt.ledger, body)
        [delivery] = event.deliveries
        return delivery.id

    def run(self, delivery_id: str) -> str:
        return run_delivery(self.rt, delivery_id)

    def state(self, delivery_id: str) -> str:
        return self.rt.ledger.raw_delivery(delivery_id)["state"]

    def written(self) -> list[tuple[str, str]]:
        """(email, name) of each write, in the order the target saw them."""
        return [
            (body["email"], body["name"]) for body in (json.loads(r.content) for r in self.requests)
        ]

    def queued(self) -> list[str]:
        """The delivery ids of the Celery messages waiting in the queue."""
        ledger = self.rt.ledger
        messages = ledger.redis.lrange(ledger.queue.key, 0, -1)
        return [json.loads(json.loads(m)["body"])[0][0] for m in messages]


def build_env(
    write_config: WriteConfig, key_prefix: str, config: str = CRM_CONFIG, **env: str
) -> Env:
    settings = make_settings(
        write_config(config), key_prefix, redis_url="redis://unused", **CRM_ENV, **env
    )
    rt = WorkerRuntime.build(settings, client=fakeredis.FakeRedis())
    e = Env(rt)
    rt._connectors["crm"] = HttpConnector(
        rt.config.connections["crm"], settings.environ, transport=httpx.MockTransport(e.target)
    )
    return e


@pytest.fixture
def make_env(write_config: WriteConfig, key_prefix: str) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(config: str = CRM_CONFIG, **env: str) -> Env:
        made.append(build_env(write_config, key_prefix, config, **env))
        return made[-1]

    yield make
    for e in made:
        e.rt.close()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def emails(n: int) -> list[str]:
    return [f"user{i}@example.com" for i in range(n)]


# the backlog goes out in one task ----------------------------------------------------------
def test_one_task_writes_the_waiting_deliveries_and_their_messages_are_withdrawn(
    env: Env,
) -> None:
    ids = [env.receive(e) for e in emails(5)]
    assert env.queued() == list(reversed(ids))  # one message each (LPUSH: newest first)
    assert env.run(ids[0]) == "delivered"
    assert [env.state(d) for d in ids] == ["delivered"] * 5
    assert [email for email, _ in env.written()] == emails(5)  # oldest first
    # the drained deliveries' messages were withdrawn in the claim; any that was already
    # taken by a worker is a task that finds its delivery done and writes nothing
    assert env.queued() == [ids[0]]  # the task's own (acknowledged by Celery, not us)
    assert all(env.run(d) == ClaimStatus.SKIP for d in ids[1:])
    assert len(env.requests) == 5


def test_crmhub_drain_max_bounds_the_deliveries_of_one_task(make_env: Callable[..., Env]) -> None:
    env = make_env(CRMHUB_DRAIN_MAX="3")
    ids = [env.receive(e) for e in emails(5)]
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered"] * 3 + ["pending"] * 2
    assert env.queued()[:2] == [ids[4], ids[3]]  # theirs still wait for a worker


def test_crmhub_drain_seconds_bounds_its_time(make_env: Callable[..., Env]) -> None:
    env = make_env(CRMHUB_DRAIN_SECONDS="0")
    ids = [env.receive(e) for e in emails(3)]
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "pending", "pending"]


def test_crmhub_drain_max_1_is_one_delivery_per_task(make_env: Callable[..., Env]) -> None:
    env = make_env(CRMHUB_DRAIN_MAX="1")
    ids = [env.receive(e) for e in emails(3)]
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "pending", "pending"]
    # nor does a stale message take another's delivery (non-batching connector)
    keys = env.rt.ledger.keys  # gone: its own hash, or its event's (where a first is held)
    env.rt.ledger.redis.delete(keys.delivery(ids[0]), keys.event(event_of_folded(ids[0])))
    assert env.run(ids[0]) == Reason.MISSING
    assert env.run(ids[1]) == "delivered" and env.state(ids[2]) == "pending"


def test_a_skipped_message_drains_in_its_place(env: Env) -> None:
    first = env.receive("ada@example.com", name="Ada")
    later = env.receive("ada@example.com", name="Ada Lovelace")  # not its turn yet
    other = env.receive("bob@example.com")
    assert env.run(later) == ClaimStatus.SKIP
    # its message was not wasted: the connection's waiting deliveries went out, in order
    assert [env.state(d) for d in (first, later, other)] == ["delivered"] * 3
    assert env.written() == [
        ("ada@example.com", "Ada"),
        ("bob@example.com", "Ada"),
        ("ada@example.com", "Ada Lovelace"),
    ]


# per-record order ----------------------------------------------------------------------------
def test_a_records_writes_stay_in_arrival_order(env: Env) -> None:
    a1 = env.receive("ada@example.com", name="first")
    b = env.receive("bob@example.com", name="bob")
    a2 = env.receive("ada@example.com", name="second")
    a3 = env.receive("ada@example.com", name="third")
    env.run(a1)
    assert [env.state(d) for d in (a1, b, a2, a3)] == ["delivered"] * 4
    ada = [name for email, name in env.written() if email == "ada@example.com"]
    assert ada == ["first", "second", "third"]


def test_a_record_with_a_write_in_flight_elsewhere_is_not_claimed(env: Env) -> None:
    a1 = env.receive("ada@example.com", name="first")
    a2 = env.receive("ada@example.com", name="second")
    b = env.receive("bob@example.com")
    # another worker holds Ada's first write
    other = env.rt.ledger.claim(a1, token="another-worker", now=time.time(), lease_seconds=60)
    assert other.status == ClaimStatus.CLAIMED
    assert env.run(b) == "delivered"
    assert env.state(a1) == "in_flight" and env.state(a2) == "pending"
    assert env.written() == [("bob@example.com", "Ada")]


def test_an_older_event_than_the_one_applied_is_superseded_not_written(env: Env) -> None:
    ada_new = env.receive("ada@example.com", name="new")
    env.run(ada_new)
    body = stripe_event("evt_old", type_="customer.updated", email="ada@example.com", name="old")
    body["created"] -= 100  # older than what Ada's record has
    [event] = accept_webhook(env.rt.config, env.rt.ledger, body)
    old = event.deliveries[0].id
    bob = env.receive("bob@example.com")
    env.run(bob)
    assert env.state(old) == "superseded"
    assert old not in env.queued()  # its message has nothing to do either: withdrawn
    assert ("ada@example.com", "old") not in env.written()


# what stops the drain --------------------------------------------------------------------------
def test_a_pause_stops_the_drain_at_once(env: Env) -> None:
    ids = [env.receive(e) for e in emails(4)]

    def operator_pauses_after_the_second_write(request: httpx.Request) -> None:
        if len(env.requests) == 2:
            env.rt.ledger.pause("crm", reason="manual", by="ana", now=time.time())

    env.script = operator_pauses_after_the_second_write
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "delivered", "pending", "pending"]
    assert len(env.requests) == 2
    # the rest meet the pause through their own messages, in order, as without the drain
    assert env.run(ids[2]) == ClaimStatus.HELD


def test_an_auth_failure_pauses_and_the_drain_goes_no_further(env: Env) -> None:
    ids = [env.receive(e) for e in emails(3)]
    env.script = lambda r: (
        httpx.Response(403, json={"message": "forbidden"})
        if (json.loads(r.content)["email"] == "user1@example.com")
        else None
    )
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "held", "pending"]
    assert len(env.requests) == 2


def test_the_rate_limit_stops_the_drain_and_changes_nothing(make_env: Callable[..., Env]) -> None:
    limited = CRM_CONFIG.replace(
        "    auth: {type: bearer, token_env: CRM_TOKEN}\n",
        "    auth: {type: bearer, token_env: CRM_TOKEN}\n"
        "    rate_limit: {requests: 2, per_seconds: 10}\n",
    )
    env = make_env(limited)
    ids = [env.receive(e) for e in emails(4)]
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "delivered", "pending", "pending"]
    raw = env.rt.ledger.raw_delivery(ids[2])
    assert raw["attempts"] == "0" and "due_at" not in raw  # not scheduled by the drain
    assert ids[2] in env.queued() and ids[3] in env.queued()


def test_a_429_cools_the_connection_and_the_drain_stops(env: Env) -> None:
    ids = [env.receive(e) for e in emails(3)]
    env.script = lambda r: (
        httpx.Response(429, headers={"Retry-After": "30"})
        if (json.loads(r.content)["email"] == "user1@example.com")
        else None
    )
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "scheduled", "pending"]
    assert len(env.requests) == 2


def test_a_circuit_that_is_not_closed_stops_the_drain(env: Env) -> None:
    # between this task's last write and its next claim, another worker's failures opened the
    # circuit (a success closes it again, so this is the moment a drain meets one)
    ids = [env.receive(e) for e in emails(2)]
    breaker = env.rt.ledger.keys.breaker("crm")
    for state in ("open", "half_open"):
        env.rt.ledger.redis.hset(breaker, mapping={"state": state, "open_until": 0})
        claim = env.rt.ledger.claim_next(
            "crm", ["contacts"], token="t", now=time.time(), lease_seconds=60
        )
        assert (claim.status, claim.reason) == (ClaimStatus.SKIP, Reason.CIRCUIT_OPEN)
        assert [env.state(d) for d in ids] == ["pending", "pending"]
        assert env.rt.ledger.redis.hget(breaker, "probe") is None  # no probe taken
        assert sorted(env.queued()) == sorted(ids)


def test_a_probes_failure_stops_the_drain(env: Env) -> None:
    ids = [env.receive(e) for e in emails(3)]
    breaker = env.rt.ledger.keys.breaker("crm")
    env.rt.ledger.redis.hset(breaker, mapping={"state": "open", "open_until": 0})
    # the circuit is due a probe: this message's own delivery is it; it fails, and nothing
    # more is sent behind it
    env.script = lambda r: httpx.Response(503, json={"message": "unavailable"})
    assert env.run(ids[0]) == "retry"
    assert [env.state(d) for d in ids] == ["scheduled", "pending", "pending"]
    assert len(env.requests) == 1


def test_a_failure_is_scheduled_alone_and_the_rest_wait_for_their_messages(env: Env) -> None:
    ids = [env.receive(e) for e in emails(4)]
    env.script = lambda r: (
        httpx.Response(500, json={"message": "oops"})
        if (json.loads(r.content)["email"] == "user1@example.com")
        else None
    )
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "scheduled", "pending", "pending"]
    [attempt] = env.rt.ledger.delivery(ids[1], history=True)["attempt_history"]  # type: ignore[index]
    assert attempt["outcome"] == "retry" and attempt["status"] == 500
    assert ids[2] in env.queued() and ids[3] in env.queued()


def test_a_data_error_is_dead_alone_and_the_drain_goes_on(env: Env) -> None:
    ids = [env.receive(e) for e in emails(4)]
    env.script = lambda r: (
        httpx.Response(422, json={"message": "invalid email"})
        if (json.loads(r.content)["email"] == "user1@example.com")
        else None
    )
    env.run(ids[0])
    assert [env.state(d) for d in ids] == ["delivered", "dead", "delivered", "delivered"]


# the connection's objects ----------------------------------------------------------------------
TWO_OBJECTS = (
    CRM_CONFIG
    + """\
  customer-to-lead:
    source: stripe
    when: {event_type: [customer.updated]}
    connection: crm
    object: leads
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, required: true}
      name: data.object.name
"""
)


def test_the_drain_takes_every_object_of_the_connection(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(TWO_OBJECTS)
    assert objects_of(env.rt.config, "crm") == ["contacts", "leads"]
    for email in emails(2):
        body = stripe_event(f"evt_{email}", type_="customer.updated", email=email, name="Ada")
        accept_webhook(env.rt.config, env.rt.ledger, body)
    first = env.rt.ledger.first_ready("crm", "contacts")
    assert first is not None
    env.run(first)
    assert sorted(r.url.raw_path.decode() for r in env.requests) == [
        "/api/contacts/user0%40example.com",
        "/api/contacts/user1%40example.com",
        "/api/leads/user0%40example.com",
        "/api/leads/user1%40example.com",
    ]
    assert env.queued() == [first]


# the rules as plain functions, and the settings --------------------------------------------------
def test_the_drain_goes_on_only_while_the_target_takes_writes() -> None:
    assert goes_on(["delivered", "superseded", "dead"])
    for stop in ("retry", "deferred", "held", "lost"):
        assert not goes_on(["delivered", stop])


def test_the_budget_counts_deliveries_and_time() -> None:
    budget = Budget(max_deliveries=2, seconds=60)
    assert budget.enabled and budget.left()
    budget.done = 2
    assert not budget.left()
    assert not Budget(max_deliveries=5, seconds=0).left()
    assert not Budget(max_deliveries=1, seconds=60).enabled


def test_the_drain_settings_default_and_refuse_nonsense() -> None:
    settings = Settings.from_env({})
    assert (settings.drain_max, settings.drain_seconds) == (50, 0.5)
    tuned = Settings.from_env({"CRMHUB_DRAIN_MAX": "10", "CRMHUB_DRAIN_SECONDS": "0.25"})
    assert (tuned.drain_max, tuned.drain_seconds) == (10, 0.25)
    for name, value in (
        ("CRMHUB_DRAIN_MAX", "0"),
        ("CRMHUB_DRAIN_MAX", "many"),
        ("CRMHUB_DRAIN_SECONDS", "-1"),
        ("CRMHUB_DRAIN_SECONDS", "soon"),
        ("CRMHUB_DRAIN_SECONDS", "nan"),
    ):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({name: value})
        assert name in str(info.value)
