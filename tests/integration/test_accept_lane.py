"""The receiver's accepts run on a Redis connection of its own (core/ledger/lane.py). A long-lived
connection meets what a pooled one rarely does: the server restarting under it (the socket is
dead and the script cache empty) and a flushed script cache. Each must cost nothing but a
reconnect: the next webhook is accepted, and a call that cannot be made raises
LedgerUnavailable (the receiver's 503), never a raw Redis error.

These run against a redis-server of their own, restarted on the same port, so no other test's
server is disturbed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from processes import PrivateRedis

from core.errors import LedgerUnavailable
from core.ledger import Ledger, NewDelivery, NewEvent
from core.queue import HintQueue
from core.redis_client import connect


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = PrivateRedis(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def event(n: int) -> NewEvent:
    return NewEvent(
        id=f"evt_{n}",
        source="stripe",
        type="customer.created",
        external_id=f"evt_ext_{n}",
        received_at=time.time(),
        occurred_at=None,
        headers={},
        body=f'{{"n": {n}}}',
        deliveries=(
            NewDelivery(
                id=f"dlv_{n}",
                mapping="m",
                connection="crm",
                object="contacts",
                record_key=f"crm:contacts:{n}",
            ),
        ),
    )


def make_ledger(url: str) -> Ledger:
    return Ledger(connect(url), prefix="lane", queue=HintQueue("lane.deliveries", "lane:q:"))


def test_accepting_goes_on_after_redis_restarts(server: PrivateRedis) -> None:
    ledger = make_ledger(server.url)
    assert not ledger.accept([event(1)], time.time())[0].duplicate

    server.stop()
    server.start()  # same port: the old connection is dead, no scripts loaded

    (result,) = ledger.accept([event(2)], time.time())
    assert (result.event_id, result.duplicate, result.deliveries) == ("evt_2", False, 1)
    assert ledger.raw_event("evt_2")["state"] == "recorded"
    assert ledger.raw_delivery("dlv_2")["state"] == "pending"


def test_accepting_goes_on_after_the_script_cache_is_flushed(server: PrivateRedis) -> None:
    ledger = make_ledger(server.url)
    ledger.accept([event(1)], time.time())
    redis.Redis.from_url(server.url).script_flush()

    (result,) = ledger.accept([event(2)], time.time())
    assert not result.duplicate
    # and a repeat is still recognised as one: the reloaded script is the same script
    (again,) = ledger.accept([event(2)], time.time())
    assert (again.event_id, again.duplicate) == ("evt_2", True)


def test_redis_down_is_ledger_unavailable_and_up_again_is_accepted(server: PrivateRedis) -> None:
    ledger = make_ledger(server.url)
    ledger.accept([event(1)], time.time())
    server.stop()

    with pytest.raises(LedgerUnavailable, match="unreachable"):
        ledger.accept([event(2)], time.time())

    server.start()
    (result,) = ledger.accept([event(2)], time.time())
    assert (result.event_id, result.duplicate) == ("evt_2", False)


def test_a_thousand_failed_calls_leave_nothing_behind_and_the_next_is_accepted(
    server: PrivateRedis,
) -> None:
    """Issue 9: each failed call used to leak a slot of redis-py's connection pool (100), so
    after ~50 the ledger answered "Too many connections" for good, Redis back or not."""
    ledger = make_ledger(server.url)
    ledger.accept([event(0)], time.time())
    server.stop()

    for n in range(1, 1001):
        with pytest.raises(LedgerUnavailable, match="unreachable") as failure:
            ledger.accept([event(n)], time.time())
    assert "Too many connections" not in str(failure.value)
    with pytest.raises(LedgerUnavailable):
        ledger.ping()

    server.start()
    ledger.ping()
    (result,) = ledger.accept([event(1001)], time.time())
    assert (result.event_id, result.duplicate) == ("evt_1001", False)
    # and the shared pool is untouched for everything else (reads, locks)
    assert ledger.raw_event("evt_1001")["state"] == "recorded"
