"""A hub upgraded with events in Redis keeps working (README, "Memory"): keys written in the
layout before (an event's body zlib-compressed or plain with its headers apart, its delivery in
a hash of its own named dlv:{id}, its record's queue named by the record key, its dedupe key
named by the sender's id, its search entries spelling the term and time) are read, delivered,
replayed, released and archived by this code, beside events it writes in its own layout (an
event's first delivery held in its event's hash). Every test runs on fakeredis and on a real
Redis, as tests/unit/test_ledger.py does."""

from __future__ import annotations

import json
import zlib

import pytest
import redis
from conftest import text

from core.ledger import Ledger, NewDelivery, NewEvent
from core.ledger.deliveries import folded_id
from core.queue import HintQueue
from core.vocabulary import AttemptOutcome, DeadCategory, OperatorAction

T0 = 1_800_000_000.0
MS = int(T0 * 1000)
OLD_EVENT = "evt_0190a1b2c3d4e5f6a7b8c9d0"
OLD_DELIVERY = "dlv_0190a1b2c3d4aaaaaaaaaaaa"
RK = "crm:contacts:email=ada@example.com"
BODY = json.dumps({"id": "evt_sender_1", "email": "ada@example.com", "note": "x" * 200})


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


@pytest.fixture
def ledger(client: redis.Redis, key_prefix: str) -> Ledger:
    prefix = key_prefix  # what real_redis deletes afterwards
    return Ledger(client, prefix=prefix, queue=HintQueue(f"{prefix}.q", f"{prefix}:q:"))


def write_old_event(ledger: Ledger, *, state: str = "pending", packed: bool = True) -> None:
    """An event and its pending delivery exactly as the code before this layout wrote them."""
    r, p = ledger.redis, ledger.prefix
    body_field, body = ("bodyz", zlib.compress(BODY.encode())) if packed else ("body", BODY)
    r.hset(
        f"{p}:evt:{OLD_EVENT}",
        mapping={
            "id": OLD_EVENT,
            "source": "stripe",
            "type": "customer.updated",
            "external_id": "evt_sender_1",
            "received_at": MS,
            "occurred_at": "",
            "state": "recorded",
            "deliveries": OLD_DELIVERY,
            body_field: body,
            "headers": '{"User-Agent":"Stripe/1.0"}',
        },
    )
    r.zadd(f"{p}:events", {OLD_EVENT: MS})
    r.zadd(f"{p}:events:src:stripe", {OLD_EVENT: MS})
    for term in ("evt_sender_1", "ada@example.com"):
        r.zadd(f"{p}:search", {f"{term}\x00{MS:013d}\x00{OLD_EVENT}": 0})
    r.set(f"{p}:dedupe:stripe:evt_sender_1", bytes.fromhex(OLD_EVENT[4:]), ex=3600)
    r.zadd(f"{p}:rk:{RK}", {OLD_DELIVERY: 1})
    r.set(f"{p}:seq", 1)
    r.hset(
        f"{p}:dlv:{OLD_DELIVERY}",
        mapping={
            "seq": 1,
            "rk": RK,
            "state": state,
            "updated_at": MS,
            "published_at": MS,
            "msg": "1",
            "id": OLD_DELIVERY,
            "event_id": OLD_EVENT,
            "mapping": "contacts",
            "connection": "crm",
            "object": "contacts",
            "attempts": 0,
            "created_at": MS,
        },
    )
    r.hset(f"{p}:conn:crm:counts", state, 1)
    if state == "held":
        r.zadd(f"{p}:conn:crm:held", {OLD_DELIVERY: 1})
        r.hset(f"{p}:dlv:{OLD_DELIVERY}", "held_at", MS)
        r.set(f"{p}:conn:crm:pause", json.dumps({"reason": "upgrade", "since": T0}))
    else:
        r.zadd(f"{p}:ready:crm:contacts", {OLD_DELIVERY: MS})


def new_event(n: int, rk: str = RK, email: str = "bob@example.com") -> NewEvent:
    event_id = f"evt_0190a1b2c3d5{n:012x}"
    return NewEvent(
        id=event_id,
        source="stripe",
        type="customer.updated",
        external_id=f"evt_sender_new_{n}",
        received_at=T0 + n,
        occurred_at=None,
        headers={"User-Agent": "Stripe/1.0"},
        body=json.dumps({"email": email, "n": n}),
        deliveries=(
            NewDelivery(
                id=folded_id(event_id),
                mapping="contacts",
                connection="crm",
                object="contacts",
                record_key=rk,
            ),
        ),
    )


def deliver(ledger: Ledger, delivery_id: str, outcome: str = "delivered") -> None:
    claim = ledger.claim(delivery_id, token="t", now=T0 + 10, lease_seconds=60)
    assert claim.status == "claimed", claim
    finish = ledger.finish(
        delivery_id, token="t", now=T0 + 10, outcome=AttemptOutcome(outcome), attempt={}
    )
    assert not finish.lost


def search(ledger: Ledger, q: str) -> list[str]:
    page = ledger.event_page(
        source=None,
        type=None,
        state=None,
        q=q,
        since_ms=None,
        until_ms=None,
        limit=10,
        cursor=None,
        delivery_states=frozenset(),
    )
    return [row["id"] for row in page.rows]


@pytest.mark.parametrize("packed", [True, False])
def test_an_event_held_before_reads_as_it_was_and_is_delivered(
    ledger: Ledger, packed: bool
) -> None:
    write_old_event(ledger, packed=packed)
    event = ledger.event(OLD_EVENT)
    assert event is not None
    assert event["body"] == json.loads(BODY) and event["headers"] == {"User-Agent": "Stripe/1.0"}
    assert ledger.raw_delivery(OLD_DELIVERY)["state"] == "pending"
    deliver(ledger, OLD_DELIVERY)
    assert ledger.raw_delivery(OLD_DELIVERY)["state"] == "delivered"
    assert ledger.redis.zcard(f"{ledger.prefix}:rk:{RK}") == 0  # its place in the queue went


def test_a_write_to_the_same_record_waits_for_the_one_queued_before(ledger: Ledger) -> None:
    write_old_event(ledger)
    [accepted] = ledger.accept([new_event(1)], T0 + 1)
    later = folded_id(accepted.event_id)
    assert not ledger.redis.exists(ledger.keys.delivery(later))  # held in its event's hash
    # not its turn: the delivery queued under the old name goes first
    assert ledger.claim(later, token="t", now=T0 + 2, lease_seconds=60).status == "skip"
    deliver(ledger, OLD_DELIVERY)
    deliver(ledger, later)
    assert [ledger.raw_delivery(d)["state"] for d in (OLD_DELIVERY, later)] == [
        "delivered",
        "delivered",
    ]


def test_a_repeat_of_an_event_taken_before_is_still_a_duplicate(ledger: Ledger) -> None:
    write_old_event(ledger)
    repeat = NewEvent(**{**new_event(2).__dict__, "external_id": "evt_sender_1"})
    [result] = ledger.accept([repeat], T0 + 2)
    assert result.duplicate and result.event_id == OLD_EVENT


def test_search_finds_events_of_both_layouts_by_address_and_sender_id(ledger: Ledger) -> None:
    write_old_event(ledger)
    [new] = ledger.accept([new_event(3, rk="crm:contacts:x", email="ada@example.com")], T0 + 3)
    assert search(ledger, "ada@example.com") == [new.event_id, OLD_EVENT]
    assert search(ledger, "evt_sender_1") == [OLD_EVENT]
    assert search(ledger, "evt_sender_new_3") == [new.event_id]


def test_a_delivery_held_by_a_pause_before_goes_out_on_resume(ledger: Ledger) -> None:
    write_old_event(ledger, state="held")
    ledger.resume("crm", T0 + 5)
    assert ledger.raw_delivery(OLD_DELIVERY)["state"] == "pending"
    deliver(ledger, OLD_DELIVERY)


def test_dead_letters_of_both_layouts_are_replayed(ledger: Ledger) -> None:
    write_old_event(ledger)
    [new] = ledger.accept([new_event(4, rk="crm:contacts:y")], T0 + 4)
    ids = [OLD_DELIVERY, folded_id(new.event_id)]
    for d in ids:
        claim = ledger.claim(d, token="t", now=T0 + 10, lease_seconds=60)
        assert claim.status == "claimed"
        ledger.finish(
            d,
            token="t",
            now=T0 + 10,
            outcome=AttemptOutcome.DEAD,
            attempt={},
            error="rejected",
            category=DeadCategory.VALIDATION,
        )
    assert sorted(ledger.dead_ids()) == sorted(ids)
    done = ledger.dead_letter_action(
        OperatorAction.REPLAY, [(d, "crm:contacts:other") for d in ids], now=T0 + 20, by="op"
    )
    assert set(done.values()) == {"ok"}, done
    for d in ids:
        replayed = ledger.raw_delivery(d)
        assert replayed["state"] == "pending" and replayed["connection"] == "crm"
        assert replayed["rk"] == "crm:contacts:other"
    deliver(ledger, ids[0])
    deliver(ledger, ids[1])


def test_done_events_of_both_layouts_leave_redis_with_their_entries(ledger: Ledger) -> None:
    write_old_event(ledger)
    [new] = ledger.accept([new_event(5, rk="crm:contacts:z", email="ada@example.com")], T0 + 5)
    for d in (OLD_DELIVERY, folded_id(new.event_id)):
        deliver(ledger, d)
    done = ledger.terminal_batch(T0 + 3600, 10)
    assert sorted(e.id for e in done) == sorted([OLD_EVENT, new.event_id])
    assert {len(e.deliveries) for e in done} == {1}
    assert ledger.evict(done, T0 + 3600) == 2
    left = {text(k) for k in ledger.redis.keys(f"{ledger.prefix}:*")}
    assert not [k for k in left if OLD_EVENT[4:] in k or new.event_id[4:] in k or ":dlv:" in k]
    assert ledger.redis.zcard(ledger.keys.search()) == 0  # no entry names an address any more


def stored_fields(ledger: Ledger, event_id: str) -> set[str]:
    return {text(k) for k in ledger.redis.hkeys(ledger.keys.event(event_id))}


def test_an_event_routed_once_stores_no_id_state_or_deliveries_and_reads_them_back(
    ledger: Ledger,
) -> None:
    [new] = ledger.accept([new_event(6)], T0 + 6)
    only = folded_id(new.event_id)
    assert not {"id", "state", "deliveries"} & stored_fields(ledger, new.event_id)
    event = ledger.event(new.event_id)
    assert event is not None
    assert (event["id"], event["state"]) == (new.event_id, "recorded")
    assert [d["id"] for d in event["deliveries"]] == [only]
    [row] = ledger.event_page(
        source="stripe",
        type=None,
        state="pending",  # a delivery state: its delivery decides
        q=None,
        since_ms=None,
        until_ms=None,
        limit=10,
        cursor=None,
        delivery_states=frozenset({"pending", "delivered"}),
    ).rows
    assert (row["id"], row["state"], row["deliveries"]) == (new.event_id, "recorded", only)
    deliver(ledger, only)  # the event is done for good once its one delivery is
    [done] = ledger.terminal_batch(T0 + 3600, 10)
    assert done.id == new.event_id and [d.fields["id"] for d in done.deliveries] == [only]
    assert ledger.evict([done], T0 + 3600) == 1
    assert not ledger.redis.exists(ledger.keys.event(new.event_id))


def test_an_event_routed_to_two_mappings_lists_both_and_is_done_when_both_are(
    ledger: Ledger,
) -> None:
    one = new_event(7)
    second = NewDelivery(
        id="dlv_0190a1b2c3d5ffffffffffff",
        mapping="deals",
        connection="crm",
        object="deals",
        record_key="crm:deals:x",
    )
    [new] = ledger.accept(
        [NewEvent(**{**one.__dict__, "deliveries": (*one.deliveries, second)})], T0
    )
    ids = [folded_id(new.event_id), second.id]
    assert (
        ledger.redis.hget(ledger.keys.event(new.event_id), "deliveries") == ",".join(ids).encode()
    )
    assert [d["id"] for d in ledger.event(new.event_id)["deliveries"]] == ids  # type: ignore[index]
    [listed] = ledger.event_fields([new.event_id], ("deliveries",))
    assert listed["deliveries"] == ",".join(ids)
    # a field not asked for is not put back: its absence says nothing
    assert "deliveries" not in ledger.event_fields([new.event_id], ("external_id",))[0]
    deliver(ledger, ids[0])
    assert ledger.terminal_batch(T0 + 3600, 10) == []  # its second is still on its way
    deliver(ledger, ids[1])
    [done] = ledger.terminal_batch(T0 + 3600, 10)
    assert [d.fields["id"] for d in done.deliveries] == ids
    assert ledger.evict([done], T0 + 3600) == 1
    assert not ledger.redis.exists(ledger.keys.delivery(second.id))


def test_an_unrouted_event_stores_its_state_and_no_deliveries(ledger: Ledger) -> None:
    [new] = ledger.accept([NewEvent(**{**new_event(8).__dict__, "deliveries": ()})], T0)
    raw = ledger.redis.hmget(ledger.keys.event(new.event_id), ["state", "deliveries"])
    assert raw == [b"unrouted", b""]
    event = ledger.event(new.event_id)
    assert event is not None and (event["state"], event["deliveries"]) == ("unrouted", [])
    [done] = ledger.terminal_batch(T0 + 3600, 10)  # done for good already
    assert done.id == new.event_id and done.deliveries == ()


def test_purge_erases_an_event_with_the_delivery_held_in_its_hash(ledger: Ledger) -> None:
    [new] = ledger.accept([new_event(9)], T0)
    assert ledger.purge([new.event_id], T0 + 1) == {new.event_id: "pending"}  # still on its way
    deliver(ledger, folded_id(new.event_id))
    assert ledger.purge([new.event_id], T0 + 20) == {new.event_id: "ok"}
    assert not ledger.redis.exists(ledger.keys.event(new.event_id))
    assert ledger.redis.zcard(ledger.keys.events()) == 0
