"""The ledger's state machine (core/ledger/*.lua through core.ledger.Ledger).

Every test runs twice: against fakeredis (its Lua runtime) and against a real Redis, because
the scripts must behave the same on both. After each step the invariant the design rests on is
checked: every delivery is in exactly one state, the indexes agree with that state, the
per-connection counts add up to the deliveries, and only unfinished writes hold a place in
their record's queue.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from conftest import text

from core.ids import new_event_id
from core.ledger import Claim, Finish, Ledger, NewDelivery, NewEvent, Swept
from core.ledger.keys import dedupe_digest, record_digest
from core.queue import HintQueue
from core.vocabulary import AttemptOutcome, OperatorAction

T0 = 1_750_000_000.0  # a fixed "now" (2025-06-15), seconds
#: random walks per backend (raise it to hunt for interleaving bugs: CRMHUB_LEDGER_WALKS=500)
RANDOM_WALKS = int(os.environ.get("CRMHUB_LEDGER_WALKS", "6"))
CRM = "crm"
NON_TERMINAL = {"pending", "in_flight", "scheduled", "held"}
TERMINAL = {"delivered", "dead", "superseded", "discarded"}


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


@dataclass
class Hub:
    """A ledger plus the helpers the tests need to look inside it."""

    redis: redis.Redis
    prefix: str
    ledger: Ledger = field(init=False)
    n: int = 0
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = Ledger(
            self.redis,
            prefix=self.prefix,
            queue=HintQueue(f"{self.prefix}.deliveries", f"{self.prefix}:q:"),
        )

    def key(self, *parts: str) -> str:
        """A key as written on disk (spelled out here, so the tests pin the layout)."""
        return ":".join((self.prefix, *parts))

    # writing ----------------------------------------------------------------------------
    def accept(
        self, rk: str = "", *, conn: str = CRM, now: float = T0, occurred_ms: int | None = None
    ) -> str:
        """Accept one event with one delivery to `conn` for record key `rk`; its id."""
        self.n += 1
        delivery_id = f"dlv_{self.n:04d}"
        self.ids.append(delivery_id)
        delivery = NewDelivery(
            id=delivery_id,
            mapping="contacts",
            connection=conn,
            object="contacts",
            record_key=f"{conn}:contacts:email={rk or delivery_id}",
            occurred_ms=occurred_ms,
        )
        event = NewEvent(
            id=f"evt_{self.n:04d}",
            source="stripe",
            type="customer.updated",
            external_id=f"evt_ext_{self.n}",
            received_at=now,
            occurred_at=None,
            headers={},
            body=json.dumps({"n": self.n}),
            deliveries=(delivery,),
        )
        [result] = self.ledger.accept([event], now)
        assert result.deliveries == 1 and not result.duplicate
        return delivery_id

    def claim(
        self, delivery_id: str, token: str = "tok", now: float = T0, lease: float = 60, **kw: Any
    ) -> Claim:
        return self.ledger.claim(delivery_id, token=token, now=now, lease_seconds=lease, **kw)

    def finish(
        self, delivery_id: str, outcome: str, token: str = "tok", now: float = T0, **kw: Any
    ) -> Finish:
        return self.ledger.finish(
            delivery_id,
            token=token,
            now=now,
            outcome=AttemptOutcome(outcome),
            attempt={"at": now, "outcome": outcome},
            **kw,
        )

    def deliver(self, delivery_id: str, now: float = T0) -> None:
        assert self.claim(delivery_id, token="d", now=now).status == "claimed"
        assert not self.finish(delivery_id, "delivered", token="d", now=now).lost

    # reading ----------------------------------------------------------------------------
    def state(self, delivery_id: str) -> str:
        return self.ledger.raw_delivery(delivery_id)["state"]

    def raw(self, delivery_id: str) -> dict[str, str]:
        return self.ledger.raw_delivery(delivery_id)

    def history(self, delivery_id: str) -> dict[str, Any]:
        view = self.ledger.delivery(delivery_id, history=True)
        assert view is not None
        return view

    def messages(self) -> list[str]:
        """Delivery ids of the queued Celery messages, in the order a worker takes them
        (kombu pops from the right of the list the scripts LPUSH to)."""
        raw = self.redis.lrange(self.ledger.queue.key, 0, -1)
        ids = []
        for item in reversed(raw):
            message = json.loads(item)
            assert message["headers"]["task"] == "crmhub.deliver"
            args, _, _ = json.loads(message["body"])
            ids.append(args[0])
        return ids

    def take_messages(self) -> list[str]:
        ids = self.messages()
        self.redis.delete(self.ledger.queue.key)
        return ids

    def zset(self, *parts: str) -> set[str]:
        return {text(m) for m in self.redis.zrange(self.key(*parts), 0, -1)}

    def deliveries(self) -> dict[str, dict[str, str]]:
        """Every delivery this test made (read in one round trip), by id."""
        pipe = self.redis.pipeline(transaction=False)
        for delivery_id in self.ids:
            pipe.hgetall(self.key("dlv", delivery_id))
        raws = [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]
        return {raw["id"]: raw for raw in raws if raw}

    def check_invariant(self) -> None:
        """Exactly one state per delivery, and every index and count agrees with it."""
        deliveries = self.deliveries()
        connections = sorted({raw["connection"] for raw in deliveries.values()})
        rks = sorted({raw["rk"] for raw in deliveries.values()})
        pipe = self.redis.pipeline(transaction=False)
        for name in ("pending", "inflight", "scheduled", "dead"):
            pipe.zrange(self.key("idx", name), 0, -1)
        for conn in connections:
            pipe.zrange(self.key("conn", conn, "held"), 0, -1)
            pipe.hgetall(self.key("conn", conn, "counts"))
        for rk in rks:
            pipe.zrange(self.key("rq", record_digest(rk)), 0, -1)
        out = iter(pipe.execute())

        def members() -> set[str]:
            return {m.decode() for m in next(out)}

        indexes = {name: members() for name in ("pending", "in_flight", "scheduled", "dead")}
        held, counts = {}, {}
        for conn in connections:
            held[conn] = members()
            counts[conn] = {k.decode(): int(v) for k, v in next(out).items() if int(v)}
        queues = {rk: members() for rk in rks}

        for delivery_id, raw in deliveries.items():
            state = raw["state"]
            assert state in NON_TERMINAL | TERMINAL, (delivery_id, state)
            found = {name for name, ids in indexes.items() if delivery_id in ids}
            if delivery_id in held[raw["connection"]]:
                found.add("held")
            # a PENDING delivery is in the pending index only while its message is out
            expected = {state} if state in ("in_flight", "scheduled", "dead", "held") else set()
            assert found - {"pending"} == expected, (delivery_id, state, found)
            if "pending" in found:
                assert state == "pending", (delivery_id, state)
            in_queue = delivery_id in queues[raw["rk"]]
            assert in_queue == (state in NON_TERMINAL), (delivery_id, state, in_queue)
        for conn in connections:
            actual = Counter(r["state"] for r in deliveries.values() if r["connection"] == conn)
            assert counts[conn] == dict(actual), conn
            assert sum(counts[conn].values()) == sum(actual.values())
        # hot and cold: an event is in the terminal index exactly when it is done for good
        done = self.zset("idx", "terminal")
        states: dict[str, set[str]] = {}
        for raw in deliveries.values():
            states.setdefault(raw["event_id"], set()).add(raw["state"])
        for event_id, held_states in states.items():
            finished = held_states <= {"delivered", "superseded", "discarded"}
            assert (event_id in done) == finished, (event_id, held_states)


@pytest.fixture
def hub(client: redis.Redis, key_prefix: str) -> Iterator[Hub]:
    h = Hub(client, key_prefix)
    yield h
    h.check_invariant()


# accepting ------------------------------------------------------------------------------
def test_accept_makes_one_pending_delivery_and_publishes_one_message(hub: Hub) -> None:
    d = hub.accept("ada@example.com")
    assert hub.state(d) == "pending"
    assert hub.messages() == [d]
    assert hub.ledger.connection_state(CRM)["counts"] == {"pending": 1}
    hub.check_invariant()


def test_the_published_message_is_exactly_what_kombu_would_push(hub: Hub) -> None:
    # The scripts build the message from the template split at load time; it must come out
    # byte for byte as HintQueue.message renders it, whatever the id holds (Lua pattern
    # characters and long-bracket closers included).
    odd = "dlv_%1]]=]x"
    event = NewEvent(
        id="evt_odd",
        source="stripe",
        type=None,
        external_id="evt_odd",
        received_at=T0,
        occurred_at=None,
        headers={},
        body="{}",
        deliveries=(
            NewDelivery(
                id=odd, mapping="m", connection=CRM, object="contacts", record_key="crm:contacts:1"
            ),
        ),
    )
    hub.ledger.accept([event], T0)
    (raw,) = hub.redis.lrange(hub.ledger.queue.key, 0, -1)
    tag = int(text(hub.redis.get(hub.key("msgseq"))))
    assert text(raw) == hub.ledger.queue.message(odd, tag)


def test_a_batch_withdraws_the_messages_of_the_deliveries_it_takes(hub: Hub) -> None:
    a, b, c = (hub.accept(f"b{i}") for i in range(3))
    same_record = hub.accept("b0")  # waits behind `a`: never in a batch
    other = hub.accept("x", conn="other")  # another connection: not this batch
    assert hub.messages() == [a, b, c, other]  # the waiting one has no message yet
    assert hub.claim(a, token="w").status == "claimed"

    taken = hub.ledger.claim_batch(CRM, "contacts", token="w", now=T0, lease_seconds=60, limit=10)
    assert sorted(c.delivery_id for c in taken) == [b, c]
    # b's and c's messages are gone; a's (its worker's own) and the other connection's stay
    assert hub.messages() == [a, other]
    assert hub.state(same_record) == "pending"
    hub.check_invariant()


def test_accepting_the_same_sender_event_again_stores_and_publishes_nothing(hub: Hub) -> None:
    delivery = NewDelivery(
        id="dlv_x",
        mapping="m",
        connection=CRM,
        object="contacts",
        record_key="crm:contacts:email=a",
    )
    event = NewEvent(
        id="evt_first",
        source="stripe",
        type=None,
        external_id="evt_1",
        received_at=T0,
        occurred_at=None,
        headers={},
        body="{}",
        deliveries=(delivery,),
    )
    again = NewEvent(
        id="evt_second",
        source="stripe",
        type=None,
        external_id="evt_1",
        received_at=T0 + 5,
        occurred_at=None,
        headers={},
        body="{}",
        deliveries=(
            NewDelivery(
                id="dlv_y",
                mapping="m",
                connection=CRM,
                object="contacts",
                record_key="crm:contacts:email=a",
            ),
        ),
    )
    hub.ledger.accept([event], T0)
    [result] = hub.ledger.accept([again], T0 + 5)
    assert result.duplicate and result.event_id == "evt_first"
    assert hub.messages() == ["dlv_x"]
    assert hub.ledger.raw_delivery("dlv_y") == {}


# claiming -------------------------------------------------------------------------------
def test_a_dedupe_key_holds_one_of_our_event_ids_in_12_bytes_and_a_repeat_gets_it_back(
    hub: Hub,
) -> None:
    first_id = new_event_id(T0)
    event = NewEvent(
        id=first_id,
        source="stripe",
        type=None,
        external_id="evt_1QsenderId",
        received_at=T0,
        occurred_at=None,
        headers={},
        body="{}",
    )
    hub.ledger.accept([event], T0)
    stored = hub.ledger.redis.get(hub.ledger.keys.dedupe(dedupe_digest("stripe", "evt_1QsenderId")))
    assert stored == bytes.fromhex(first_id.removeprefix("evt_"))  # the smallest string
    again = NewEvent(**{**event.__dict__, "id": new_event_id(T0 + 1), "received_at": T0 + 1})
    [result] = hub.ledger.accept([again], T0 + 1)
    assert result.duplicate and result.event_id == first_id


def test_claim_takes_a_lease_and_a_duplicate_claim_is_skipped(hub: Hub) -> None:
    d = hub.accept()
    claim = hub.claim(d, token="worker-1", lease=30)
    assert claim.status == "claimed" and claim.attempts == 1
    raw = hub.raw(d)
    assert raw["state"] == "in_flight"
    assert int(raw["lease_until"]) == int((T0 + 30) * 1000)
    hub.check_invariant()

    duplicate = hub.claim(d, token="worker-2", now=T0 + 1)
    assert (duplicate.status, duplicate.reason) == ("skip", "in_flight")
    assert hub.raw(d)["token"] == "worker-1"
    assert hub.raw(d)["attempts"] == "1"


def test_claim_of_an_unknown_delivery_is_skipped(hub: Hub) -> None:
    claim = hub.claim("dlv_nope")
    assert (claim.status, claim.reason) == ("skip", "missing")


def test_writes_to_one_record_run_one_at_a_time_in_arrival_order(hub: Hub) -> None:
    first = hub.accept("ada@example.com")
    second = hub.accept("ada@example.com", now=T0 + 1)
    other = hub.accept("bob@example.com", now=T0 + 2)
    # only the head of each record's queue is published
    assert hub.take_messages() == [first, other]
    hub.check_invariant()

    # a stray message for the second write (a replayed hint, say) does not jump the queue
    early = hub.claim(second, token="w2", now=T0 + 3)
    assert (early.status, early.reason) == ("skip", "waiting")
    assert hub.state(second) == "pending"

    assert hub.claim(first, token="w1", now=T0 + 3).status == "claimed"
    assert hub.take_messages() == []
    hub.finish(first, "delivered", token="w1", now=T0 + 4)
    # the record's next write is published in the same step that finished the first
    assert hub.take_messages() == [second]
    assert hub.claim(second, token="w2", now=T0 + 5).status == "claimed"
    hub.check_invariant()


def test_a_dead_head_also_releases_the_next_write_for_its_record(hub: Hub) -> None:
    first = hub.accept("ada@example.com")
    second = hub.accept("ada@example.com")
    hub.take_messages()
    hub.claim(first)
    hub.finish(first, "dead", category="rejected_by_target", error="HTTP 400")
    assert hub.take_messages() == [second]


# outcomes -------------------------------------------------------------------------------
def test_outcomes_move_each_delivery_to_one_state_and_counts_add_up(hub: Hub) -> None:
    ok, bad, later, waiting = (hub.accept(f"r{i}") for i in range(4))
    for d in (ok, bad, later):
        assert hub.claim(d, token=d).status == "claimed"
    hub.check_invariant()

    hub.finish(ok, "delivered", token=ok, now=T0 + 1)
    hub.finish(
        bad,
        "dead",
        token=bad,
        now=T0 + 1,
        category="rejected_by_target",
        error="target rejected the record (HTTP 400)",
        dead_letter={"record": {"email": "x"}, "problems": []},
    )
    hub.finish(
        later, "retry", token=later, now=T0 + 1, due=T0 + 61, error="HTTP 503", transient=True
    )
    hub.check_invariant()

    assert {d: hub.state(d) for d in (ok, bad, later, waiting)} == {
        ok: "delivered",
        bad: "dead",
        later: "scheduled",
        waiting: "pending",
    }
    counts = hub.ledger.connection_state(CRM)["counts"]
    assert {k: v for k, v in counts.items() if v} == {
        "delivered": 1,
        "dead": 1,
        "scheduled": 1,
        "pending": 1,
    }
    assert sum(counts.values()) == 4

    assert hub.ledger.dead_ids() == [bad]
    dead = hub.ledger.delivery(bad, history=True)
    assert dead is not None
    assert dead["dead"]["category"] == "rejected_by_target"
    assert dead["dead"]["error"] == "target rejected the record (HTTP 400)"
    assert dead["dead"]["record"] == {"record": {"email": "x"}, "problems": []}
    assert dead["attempt_history"] == [{"at": T0 + 1, "outcome": "dead"}]
    assert hub.raw(later)["due_at"] == str(int((T0 + 61) * 1000))
    last = hub.ledger.connection_state(CRM)["last"]
    assert last["success_at"] == str(int((T0 + 1) * 1000))
    assert last["failure"] == "HTTP 503"


def test_finish_with_someone_elses_token_is_lost_and_changes_nothing(hub: Hub) -> None:
    d = hub.accept()
    hub.claim(d, token="owner")
    before = hub.raw(d)
    result = hub.finish(d, "delivered", token="impostor", now=T0 + 1)
    assert result.lost
    assert hub.raw(d) == before
    assert hub.history(d)["attempt_history"] == []
    assert not hub.finish(d, "delivered", token="owner", now=T0 + 2).lost
    assert hub.state(d) == "delivered"
    # finishing twice is lost too: the lease ended with the first finish
    assert hub.finish(d, "delivered", token="owner", now=T0 + 3).lost


def test_a_retry_waits_scheduled_until_due_then_the_sweep_publishes_it(hub: Hub) -> None:
    d = hub.accept()
    hub.take_messages()
    hub.claim(d)
    hub.finish(d, "retry", now=T0 + 1, due=T0 + 30, error="HTTP 502", transient=True)
    assert hub.state(d) == "scheduled"
    assert hub.claim(d, token="early", now=T0 + 2).status == "skip"

    assert hub.ledger.sweep(T0 + 29.9, republish_after_seconds=60).due == 0
    assert hub.state(d) == "scheduled" and hub.take_messages() == []

    assert hub.ledger.sweep(T0 + 30, republish_after_seconds=60) == Swept(
        due=1, expired=0, republished=0
    )
    assert hub.state(d) == "pending"
    assert "due_at" not in hub.raw(d)
    assert hub.take_messages() == [d]
    hub.check_invariant()
    claim = hub.claim(d, now=T0 + 31)
    assert claim.status == "claimed" and claim.attempts == 2


def test_an_expired_lease_goes_back_to_pending_with_the_lost_attempt_recorded(hub: Hub) -> None:
    d = hub.accept()
    hub.take_messages()
    hub.claim(d, token="crashed-worker", now=T0, lease=60)
    assert hub.ledger.sweep(T0 + 59, republish_after_seconds=60).expired == 0
    assert hub.state(d) == "in_flight"

    assert hub.ledger.sweep(T0 + 61, republish_after_seconds=60).expired == 1
    raw = hub.raw(d)
    assert raw["state"] == "pending"
    assert "token" not in raw and "lease_until" not in raw
    assert hub.take_messages() == [d]
    history = hub.history(d)["attempt_history"]
    assert [a["outcome"] for a in history] == ["lease_expired"]
    assert history[0]["at"] == T0 + 61
    hub.check_invariant()

    # the slow worker reporting back afterwards cannot overwrite the new run
    assert hub.finish(d, "delivered", token="crashed-worker", now=T0 + 62).lost
    assert hub.state(d) == "pending"
    # the lost attempt counts
    assert hub.claim(d, token="next", now=T0 + 63).attempts == 2


def test_a_pending_delivery_whose_message_was_lost_is_published_again(hub: Hub) -> None:
    d = hub.accept(now=T0)
    assert hub.take_messages() == [d]  # the message is gone (a worker died with it)
    assert hub.ledger.sweep(T0 + 59, republish_after_seconds=60).republished == 0
    assert hub.ledger.sweep(T0 + 61, republish_after_seconds=60).republished == 1
    assert hub.take_messages() == [d]
    # republished means freshly published: not again on the next sweep
    assert hub.ledger.sweep(T0 + 62, republish_after_seconds=60).republished == 0
    assert hub.ledger.sweep(T0 + 122, republish_after_seconds=60).republished == 1


def test_a_stale_message_for_a_waiting_write_is_not_republished(hub: Hub) -> None:
    first = hub.accept("same")
    second = hub.accept("same")
    hub.take_messages()
    hub.claim(second)  # skip (waiting): drops it from the index
    hub.claim(first, lease=600)
    assert hub.ledger.sweep(T0 + 120, republish_after_seconds=60).republished == 0
    assert hub.take_messages() == []


# pause, auth, resume --------------------------------------------------------------------
def test_a_paused_connection_holds_new_deliveries_and_claims(hub: Hub) -> None:
    before = hub.accept("a")
    hub.take_messages()
    assert hub.ledger.pause(CRM, reason="maintenance", by="ops", now=T0 + 1) is True
    assert hub.ledger.pause(CRM, reason="again", by="ops", now=T0 + 2) is False
    info = hub.ledger.pause_info(CRM)
    assert info is not None and info["reason"] == "maintenance" and info["by"] == "ops"

    after = hub.accept("b", now=T0 + 3)
    assert hub.state(after) == "held"
    assert hub.take_messages() == []
    # the delivery accepted before the pause is held when its message arrives
    assert hub.claim(before, now=T0 + 4).status == "held"
    assert hub.state(before) == "held"
    assert hub.zset("conn", CRM, "held") == {before, after}
    # other connections are not affected
    elsewhere = hub.accept("c", conn="erp")
    assert hub.state(elsewhere) == "pending" and hub.take_messages() == [elsewhere]


def test_an_auth_failure_pauses_the_connection_once(hub: Hub) -> None:
    a, b = hub.accept("a"), hub.accept("b")
    hub.claim(a, token="ta")
    hub.claim(b, token="tb")
    pause = {"reason": "auth", "since": T0 + 1, "by": "crmhub", "detail": "HTTP 401"}
    first = hub.finish(a, "held", token="ta", now=T0 + 1, pause=pause, error="HTTP 401")
    second = hub.finish(
        b, "held", token="tb", now=T0 + 2, pause=pause | {"since": T0 + 2}, error="HTTP 401"
    )
    assert (first.lost, first.newly_paused) == (False, True)
    assert (second.lost, second.newly_paused) == (False, False)
    assert hub.state(a) == hub.state(b) == "held"
    assert hub.ledger.pause_info(CRM) == pause  # the first pause stands
    assert hub.state(hub.accept("c")) == "held"
    # a held delivery's attempt is recorded and counted
    assert hub.raw(a)["attempts"] == "1"
    assert hub.ledger.connection_state(CRM)["last"]["failure"] == "HTTP 401"


def test_resume_releases_held_deliveries_in_arrival_order(hub: Hub) -> None:
    hub.ledger.pause(CRM, reason="manual", by="ops", now=T0)
    held = [hub.accept(f"r{i}", now=T0 + i) for i in range(5)]
    same_record = hub.accept("r0", now=T0 + 10)  # waits behind held[0]
    hub.check_invariant()

    released = hub.ledger.resume(CRM, T0 + 100, chunk=2)
    assert released == 6
    assert hub.ledger.pause_info(CRM) is None
    assert hub.take_messages() == held  # seq order; same_record waits its turn
    assert {hub.state(d) for d in [*held, same_record]} == {"pending"}
    assert hub.zset("conn", CRM, "held") == set()
    hub.check_invariant()

    hub.deliver(held[0], now=T0 + 101)
    assert hub.take_messages() == [same_record]


def test_time_held_is_accumulated_so_it_does_not_count_toward_giving_up(hub: Hub) -> None:
    hub.ledger.pause(CRM, reason="manual", by="ops", now=T0)
    d = hub.accept(now=T0)
    hub.ledger.resume(CRM, T0 + 10)
    assert hub.raw(d)["paused_ms"] == "10000"
    assert "held_at" not in hub.raw(d)

    hub.ledger.pause(CRM, reason="manual", by="ops", now=T0 + 20)
    assert hub.claim(d, now=T0 + 20).status == "held"
    hub.ledger.resume(CRM, T0 + 50)
    assert hub.raw(d)["paused_ms"] == "40000"


# rate limits, 429 and the circuit breaker -----------------------------------------------
def test_the_rate_limit_lets_requests_through_then_waits_for_a_whole_window(hub: Hub) -> None:
    a, b, c, d = (hub.accept(f"r{i}") for i in range(4))
    rate = {CRM: (2, 1.0), "other": (1, 60.0)}  # 2 in any rolling second
    assert hub.claim(a, token="a", rates=rate).status == "claimed"
    assert hub.claim(b, token="b", rates=rate).status == "claimed"

    # both places are held by attempts still in flight: look again shortly
    wait = hub.claim(c, token="c", rates=rate, max_wait_seconds=1.0)
    assert wait.status == "wait" and wait.wait_ms == 100
    assert hub.state(c) == "pending"  # nothing changed

    # a finished 200 ms in: its place frees a whole second after that, not after its claim
    assert not hub.finish(a, "delivered", token="a", now=T0 + 0.2).lost
    wait = hub.claim(c, token="c", now=T0 + 0.3, rates=rate, max_wait_seconds=1.0)
    assert wait.status == "wait" and wait.wait_ms == 900
    deferred = hub.claim(c, token="c", now=T0 + 0.3, rates=rate, max_wait_seconds=0.5)
    assert deferred.status == "deferred" and deferred.reason == "rate_limit"
    assert deferred.due_ms == int((T0 + 1.2) * 1000)
    assert hub.state(c) == "scheduled"

    assert hub.claim(d, token="d", now=T0 + 1.19, rates=rate).status == "wait"
    assert hub.claim(d, token="d", now=T0 + 1.2, rates=rate).status == "claimed"
    hub.check_invariant()


def test_no_rolling_window_ever_holds_more_than_the_limit_however_late_requests_go(
    hub: Hub,
) -> None:
    """Workers claim at random moments and send their request at any moment before they
    finish (a slow worker sends late): the target still never sees more than `requests` in
    any rolling window, and the limiter keeps at most `requests` entries."""
    rng = random.Random(17)
    requests, per = 5, 1.0
    rate = {CRM: (requests, per)}
    ids = [hub.accept(f"w{i}") for i in range(120)]
    now = T0
    sent: list[float] = []
    running: list[tuple[float, str, float]] = []  # (finishes at, id, sends at)
    waiting = list(ids)
    while waiting or running:
        now += rng.choice([0.0, 0.01, 0.05, 0.2])
        for done in [r for r in running if r[0] <= now]:
            running.remove(done)
            sent.append(done[2])
            assert not hub.finish(done[1], "delivered", token=done[1], now=done[0]).lost
        if waiting:
            claim = hub.claim(waiting[0], token=waiting[0], now=now, rates=rate)
            if claim.status == "claimed":
                took = rng.choice([0.001, 0.05, 0.3, 0.9])
                running.append((now + took, waiting.pop(0), now + rng.uniform(0, took)))
            else:
                assert claim.status == "wait"
        assert hub.redis.zcard(hub.key("conn", CRM, "rw")) <= requests
    sent.sort()
    busiest = max(sum(1 for t in sent if s <= t < s + per) for s in sent)
    assert busiest == requests  # the limit is reached, and never passed
    assert {hub.state(d) for d in ids} == {"delivered"}


def busiest_second_when_claiming_flat_out(hub: Hub, conn: str, rate: tuple[Any, ...]) -> int:
    """Claim (and at once finish) as fast as the limiter allows over a controlled
    clock (2.2 s, in 10 ms steps); the most attempts any rolling second saw (whole ms)."""
    sent: list[int] = []
    step, n = 0, 0
    while step < 220:
        d = hub.accept(f"{conn}{n}", conn=conn, now=T0 + step / 100)
        n += 1
        while hub.claim(d, token=d, now=T0 + step / 100, rates={conn: rate}).status != "claimed":
            step += 1
        assert not hub.finish(d, "delivered", token=d, now=T0 + step / 100).lost
        sent.append(step * 10)
    return max(sum(1 for t in sent if s <= t < s + 1000) for s in sent)


def test_the_window_holds_at_its_edge_where_a_burst_of_requests_doubles_it(hub: Hub) -> None:
    # the rolling window: never more than 20 in a second, even across a window's edge
    assert busiest_second_when_claiming_flat_out(hub, CRM, (20, 1.0)) == 20
    # the limiter this replaced (a steady rate plus a burst of `requests`): nearly twice
    assert busiest_second_when_claiming_flat_out(hub, "erp", (20, 1.0, 20)) >= 39


def test_with_a_burst_the_limit_is_a_steady_rate_with_that_many_more_at_once(hub: Hub) -> None:
    a, b, c, d = (hub.accept(f"r{i}") for i in range(4))
    rate = {CRM: (2, 1.0, 2)}  # one every 500 ms, two at once
    assert hub.claim(a, token="a", rates=rate).status == "claimed"
    assert hub.claim(b, token="b", rates=rate).status == "claimed"
    wait = hub.claim(c, token="c", rates=rate, max_wait_seconds=1.0)
    assert wait.status == "wait" and 490 <= wait.wait_ms <= 500
    deferred = hub.claim(c, token="c", rates=rate, max_wait_seconds=0.1)
    assert deferred.status == "deferred" and deferred.due_ms == int(T0 * 1000) + 500
    # half a second later there is room for one more, though a and b are still in flight
    assert hub.claim(d, token="d", now=T0 + 0.5, rates=rate).status == "claimed"
    assert not hub.redis.exists(hub.key("conn", CRM, "rw"))
    hub.check_invariant()


def test_a_rate_limit_applies_to_its_own_connection_only(hub: Hub) -> None:
    a, b, c = (hub.accept(f"r{i}") for i in range(3))
    others_only = {"other": (1, 60.0)}  # CRM has no limit of its own
    assert [hub.claim(d, token=d, rates=others_only).status for d in (a, b, c)] == ["claimed"] * 3


def test_a_claim_with_data_returns_the_delivery_and_its_event(hub: Hub) -> None:
    d = hub.accept("ada@example.com")
    claim = hub.claim(d, with_data=True)
    assert claim.status == "claimed"
    assert claim.delivery["state"] == "in_flight"  # as the claim left it
    assert claim.delivery["attempts"] == "1" and claim.delivery["token"] == "tok"
    event = hub.ledger.raw_event(claim.delivery["event_id"])
    assert claim.event == event and claim.event["body"]

    skipped = hub.claim(d, token="other", with_data=True)  # not pending any more
    assert (skipped.status, skipped.delivery["connection"]) == ("skip", CRM)
    assert skipped.event == {}  # no attempt: no body to carry

    missing = hub.claim("dlv_nope", with_data=True)
    assert (missing.status, missing.reason) == ("skip", "missing")
    assert missing.delivery == {} and missing.event == {}


def test_a_429_defers_without_using_an_attempt_and_cools_the_connection_down(hub: Hub) -> None:
    a, b = hub.accept("a"), hub.accept("b")
    assert hub.claim(a, token="ta").attempts == 1
    hub.finish(
        a,
        "deferred",
        token="ta",
        now=T0 + 1,
        due=T0 + 31,
        cooldown_until=T0 + 31,
        error="rate limited by the target (HTTP 429)",
    )
    raw = hub.raw(a)
    assert raw["state"] == "scheduled" and raw["attempts"] == "0"
    state = hub.ledger.connection_state(CRM)
    assert state["cooldown_until_ms"] == int((T0 + 31) * 1000)
    assert state["breaker"] == {}  # a 429 is not a failure of the target

    # every other delivery of the connection waits out the cooldown instead of calling
    claim = hub.claim(b, token="tb", now=T0 + 10)
    assert (claim.status, claim.reason) == ("deferred", "cooldown")
    assert claim.due_ms == int((T0 + 31) * 1000)
    assert hub.state(b) == "scheduled"
    hub.check_invariant()

    hub.ledger.sweep(T0 + 31, republish_after_seconds=60)
    after = hub.claim(a, token="ta2", now=T0 + 31.5)
    assert after.status == "claimed" and after.attempts == 1


def test_a_later_cooldown_is_not_shortened_by_an_earlier_one(hub: Hub) -> None:
    a, b = hub.accept("a"), hub.accept("b")
    hub.claim(a, token="ta")
    hub.claim(b, token="tb")
    hub.finish(a, "deferred", token="ta", now=T0, due=T0 + 60, cooldown_until=T0 + 60)
    hub.finish(b, "deferred", token="tb", now=T0, due=T0 + 5, cooldown_until=T0 + 5)
    assert hub.ledger.connection_state(CRM)["cooldown_until_ms"] == int((T0 + 60) * 1000)


BREAKER = (3, 10.0, 300.0)  # threshold 3 failures, open 10 s, at most 300 s


def fail_transiently(hub: Hub, ids: list[str], now: float) -> None:
    for d in ids:
        assert hub.claim(d, token=d, now=now).status == "claimed"
    for d in ids:
        hub.finish(
            d,
            "retry",
            token=d,
            now=now,
            due=now + 1,
            transient=True,
            error="HTTP 503",
            breaker=BREAKER,
        )


def test_the_circuit_opens_after_threshold_failures_then_lets_one_probe_through(hub: Hub) -> None:
    failing = [hub.accept(f"f{i}") for i in range(2)]
    fail_transiently(hub, failing, T0)
    assert hub.ledger.connection_state(CRM)["breaker"].get("state") is None  # 2 < 3
    fail_transiently(hub, [hub.accept("f2")], T0)
    breaker = hub.ledger.connection_state(CRM)["breaker"]
    assert breaker["state"] == "open"
    assert breaker["open_until"] == str(int((T0 + 10) * 1000))

    waiting = [hub.accept(f"w{i}") for i in range(3)]
    claim = hub.claim(waiting[0], now=T0 + 5)
    assert (claim.status, claim.reason) == ("deferred", "circuit_open")
    assert claim.due_ms == int((T0 + 10) * 1000)
    assert hub.state(waiting[0]) == "scheduled"

    # once open_until passes exactly one delivery goes through as the probe
    probe = hub.claim(waiting[1], token="probe", now=T0 + 10)
    assert probe.status == "claimed"
    assert hub.ledger.connection_state(CRM)["breaker"]["state"] == "half_open"
    other = hub.claim(waiting[2], token="other", now=T0 + 10.5)
    assert (other.status, other.reason) == ("deferred", "circuit_probe")
    assert hub.state(waiting[2]) == "scheduled"
    hub.check_invariant()

    # the probe succeeds: the circuit closes and deliveries flow again
    hub.finish(waiting[1], "delivered", token="probe", now=T0 + 11, breaker=BREAKER)
    assert hub.ledger.connection_state(CRM)["breaker"] == {}
    assert hub.claim(hub.accept("after"), now=T0 + 11).status == "claimed"


def test_a_retry_that_is_not_the_targets_fault_does_not_count_toward_the_breaker(hub: Hub) -> None:
    # a bug in the hub is retried (transient=False): it says nothing about the target
    bugs = [hub.accept(f"b{i}") for i in range(5)]
    for d in bugs:
        hub.claim(d, token=d)
        hub.finish(
            d, "retry", token=d, due=T0 + 60, transient=False, error="KeyError", breaker=BREAKER
        )
    assert hub.ledger.connection_state(CRM)["breaker"] == {}
    assert hub.claim(hub.accept("next")).status == "claimed"


def test_a_failed_probe_reopens_the_circuit_for_twice_as_long(hub: Hub) -> None:
    fail_transiently(hub, [hub.accept(f"f{i}") for i in range(3)], T0)
    probe = hub.accept("probe")
    assert hub.claim(probe, token="p", now=T0 + 10).status == "claimed"
    hub.finish(probe, "retry", token="p", now=T0 + 11, due=T0 + 20, transient=True, breaker=BREAKER)
    breaker = hub.ledger.connection_state(CRM)["breaker"]
    assert breaker["state"] == "open"
    assert breaker["open_until"] == str(int((T0 + 11 + 20) * 1000))
    claim = hub.claim(hub.accept("next"), now=T0 + 25)
    assert (claim.status, claim.reason) == ("deferred", "circuit_open")


def test_a_probe_whose_worker_died_does_not_keep_the_circuit_half_open(hub: Hub) -> None:
    fail_transiently(hub, [hub.accept(f"f{i}") for i in range(3)], T0)
    probe, other = hub.accept("probe"), hub.accept("other")
    assert hub.claim(probe, token="p", now=T0 + 10, lease=30).status == "claimed"
    assert hub.ledger.sweep(T0 + 41, republish_after_seconds=60).expired == 1
    assert hub.claim(other, token="o", now=T0 + 41).status == "claimed"


# newest_wins ----------------------------------------------------------------------------
def test_newest_wins_supersedes_an_older_event_for_the_same_record(hub: Hub) -> None:
    newer = hub.accept("ada", occurred_ms=int((T0 - 10) * 1000))
    older = hub.accept("ada", occurred_ms=int((T0 - 60) * 1000))  # arrived late
    newest = hub.accept("ada", occurred_ms=int((T0 - 5) * 1000))
    hub.take_messages()
    hub.deliver(newer)
    assert hub.take_messages() == [older]

    assert hub.claim(older, now=T0 + 1).status == "superseded"
    assert hub.state(older) == "superseded"
    assert hub.raw(older)["superseded_by_ms"] == str(int((T0 - 10) * 1000))
    # superseding is a finish for the record's queue: the next write goes out
    assert hub.take_messages() == [newest]
    assert hub.claim(newest, now=T0 + 2).status == "claimed"
    hub.check_invariant()


def test_without_timestamps_every_write_is_applied(hub: Hub) -> None:
    first, second = hub.accept("ada"), hub.accept("ada")
    hub.deliver(first)
    assert hub.claim(second).status == "claimed"


# dead letters ---------------------------------------------------------------------------
def kill(hub: Hub, d: str, now: float = T0) -> None:
    assert hub.claim(d, token="k", now=now).status == "claimed"
    hub.finish(d, "dead", token="k", now=now, category="rejected_by_target", error="HTTP 422")


def test_replaying_a_dead_letter_runs_it_again_at_the_back_of_its_record_queue(hub: Hub) -> None:
    d = hub.accept("ada")
    kill(hub, d)
    old_seq = int(hub.raw(d)["seq"])
    in_progress = hub.accept("ada", now=T0 + 1)
    hub.take_messages()
    hub.claim(in_progress, token="ip", now=T0 + 1)

    result = hub.ledger.dead_letter_action(
        OperatorAction("replay"),
        [(d, hub.raw(d)["rk"])],
        now=T0 + 2,
        by="ops@host",
        reason="mapping fixed",
    )
    assert result == {d: "ok"}
    raw = hub.raw(d)
    assert raw["state"] == "pending"
    assert int(raw["seq"]) > old_seq
    assert raw["attempts"] == "0"
    assert not {"dead_at", "dead_category", "dead_error", "dead_record"} & set(raw)
    assert hub.ledger.dead_ids() == []
    view = hub.ledger.delivery(d, history=True)
    assert view is not None
    assert view["actions"] == [
        {
            "at": T0 + 2,
            "action": "replay",
            "by": "ops@host",
            "via": "cli",
            "reason": "mapping fixed",
        }
    ]
    assert [a["outcome"] for a in view["attempt_history"]] == ["dead"]  # history kept
    # the write in progress for that record goes first; the replay follows it
    assert hub.take_messages() == []
    hub.check_invariant()
    hub.finish(in_progress, "delivered", token="ip", now=T0 + 3)
    assert hub.take_messages() == [d]
    claim = hub.claim(d, now=T0 + 4)
    assert claim.status == "claimed" and claim.attempts == 1
    assert hub.raw(d)["first_attempt_at"] == str(int((T0 + 4) * 1000))


def test_replay_while_the_connection_is_paused_holds_the_delivery(hub: Hub) -> None:
    d = hub.accept()
    kill(hub, d)
    hub.ledger.pause(CRM, reason="manual", by="ops", now=T0 + 1)
    assert hub.ledger.dead_letter_action(
        OperatorAction("replay"), [(d, hub.raw(d)["rk"])], now=T0 + 2, by="ops"
    ) == {d: "ok"}
    assert hub.state(d) == "held"


def test_discarding_a_dead_letter_is_final_and_recorded(hub: Hub) -> None:
    d = hub.accept()
    kill(hub, d)
    result = hub.ledger.dead_letter_action(
        OperatorAction("discard"), [(d, "")], now=T0 + 1, by="ops", reason="test customer"
    )
    assert result == {d: "ok"}
    assert hub.state(d) == "discarded"
    assert hub.ledger.dead_ids() == []
    actions = hub.history(d)["actions"]
    assert actions[0]["action"] == "discard" and actions[0]["reason"] == "test customer"
    assert hub.ledger.connection_state(CRM)["counts"]["discarded"] == 1
    # discarded is final: it cannot be replayed
    assert hub.ledger.dead_letter_action(
        OperatorAction("replay"), [(d, "x")], now=T0 + 2, by="ops"
    ) == {d: "discarded"}


def test_replay_or_discard_of_a_delivery_that_is_not_dead_is_refused(hub: Hub) -> None:
    delivered, pending = hub.accept("a"), hub.accept("b")
    hub.deliver(delivered)
    before = {d: hub.raw(d) for d in (delivered, pending)}
    result = hub.ledger.dead_letter_action(
        OperatorAction.REPLAY,
        [(delivered, "x"), (pending, "y"), ("dlv_missing", "z")],
        now=T0 + 1,
        by="ops",
    )
    assert result == {delivered: "delivered", pending: "pending", "dlv_missing": "missing"}
    assert hub.ledger.dead_letter_action(
        OperatorAction("discard"), [(pending, "")], now=T0 + 1, by="ops"
    ) == {pending: "pending"}
    assert {d: hub.raw(d) for d in (delivered, pending)} == before
    assert hub.history(pending)["actions"] == []


# a random walk through everything at once -----------------------------------------------
@pytest.mark.parametrize("seed", range(RANDOM_WALKS))
def test_random_operations_keep_the_invariant_order_and_lose_nothing(hub: Hub, seed: int) -> None:
    """Random interleavings of every operation: the invariant holds after each step, each
    record's writes finish in queue order, and at the end (pauses lifted, time run forward)
    every delivery reaches a final state: nothing is stuck unpublished."""
    rng = random.Random(seed)
    now = T0
    inflight: dict[str, str] = {}  # delivery id -> token
    finished_seq: dict[str, list[int]] = {}  # rk -> seq of each write as it finished
    conns = ["crm", "erp"]

    def note_final(delivery_id: str) -> None:
        raw = hub.raw(delivery_id)
        finished_seq.setdefault(raw["rk"], []).append(int(raw["seq"]))

    def claim(delivery_id: str) -> None:
        token = f"t{rng.random()}"
        claim = hub.claim(
            delivery_id,
            token=token,
            now=now,
            lease=rng.choice([5, 60]),
            rates=rng.choice([None, {CRM: (5, 1.0)}]),
            max_wait_seconds=0.05,
        )
        if claim.status == "claimed":
            inflight[delivery_id] = token
        elif claim.status == "superseded":
            note_final(delivery_id)

    for _ in range(250):
        now += rng.choice([0, 0, 0.1, 1, 5, 30])
        op = rng.random()
        if op < 0.25:
            hub.accept(
                rng.choice("abcd"),
                conn=rng.choice(conns),
                now=now,
                occurred_ms=rng.choice([None, int((now - rng.randint(0, 100)) * 1000)]),
            )
        elif op < 0.45:
            messages = hub.messages()
            if messages:
                hub.redis.rpop(hub.ledger.queue.key)
                claim(messages[0])
        elif op < 0.5:
            ids = list(hub.deliveries())
            if ids:
                claim(rng.choice(ids))  # a stray or duplicate message
        elif op < 0.7 and inflight:
            delivery_id = rng.choice(sorted(inflight))
            token = inflight.pop(delivery_id)
            outcome = rng.choice(["delivered", "delivered", "retry", "dead", "deferred", "held"])
            kw: dict[str, Any] = {
                "due": now + rng.choice([1, 10, 100]),
                "transient": rng.random() < 0.8,
                "breaker": (3, 10.0, 60.0),
            }
            if outcome == "deferred":
                kw["cooldown_until"] = now + rng.choice([1, 20])
            if outcome == "held":
                kw["pause"] = {"reason": "auth", "since": now, "by": "crmhub"}
            if rng.random() < 0.1:
                token = "someone-else"
            result = hub.finish(delivery_id, outcome, token=token, now=now, **kw)
            if not result.lost and outcome in ("delivered", "dead"):
                note_final(delivery_id)
        elif op < 0.78:
            hub.ledger.sweep(now, republish_after_seconds=60)
        elif op < 0.84:
            hub.ledger.pause(rng.choice(conns), reason="manual", by="ops", now=now)
        elif op < 0.9:
            hub.ledger.resume(rng.choice(conns), now, chunk=rng.choice([1, 3, 500]))
        else:
            dead = hub.ledger.dead_ids()
            if dead:
                d = rng.choice(dead)
                action = rng.choice(
                    [OperatorAction.REPLAY, OperatorAction.REPLAY, OperatorAction.DISCARD]
                )
                hub.ledger.dead_letter_action(action, [(d, hub.raw(d)["rk"])], now=now, by="ops")
        hub.check_invariant()

    for rk, seqs in finished_seq.items():
        assert seqs == sorted(seqs), rk

    # drain: lift pauses, let time pass, run every published message to delivery
    for _ in range(60):
        now += 3600
        for conn in conns:
            hub.ledger.resume(conn, now)
        hub.ledger.sweep(now, republish_after_seconds=60)
        for delivery_id in hub.take_messages():
            status = hub.claim(delivery_id, token="drain", now=now).status
            if status == "claimed":
                hub.finish(delivery_id, "delivered", token="drain", now=now)
            if status in ("claimed", "superseded"):
                note_final(delivery_id)
        hub.check_invariant()
        if all(r["state"] in TERMINAL for r in hub.deliveries().values()):
            break
    stuck = {d: r["state"] for d, r in hub.deliveries().items() if r["state"] not in TERMINAL}
    assert stuck == {}
    for rk, seqs in finished_seq.items():
        assert seqs == sorted(seqs), rk
