"""Group commit in the receiver: concurrent requests share script calls, each gets its own
answer, a failure reaches every member, and a lone request is accepted at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import fakeredis
import pytest

from core.errors import LedgerUnavailable
from core.ledger import Accepted, Ledger, NewDelivery, NewEvent
from core.ledger.group import GroupAcceptor
from core.queue import HintQueue


def event(i: int, external: str | None = None) -> NewEvent:
    return NewEvent(
        id=f"evt_{i}",
        source="s",
        type="t",
        external_id=external or f"x{i}",
        received_at=time.time(),
        occurred_at=None,
        headers={},
        body="{}",
        deliveries=(
            NewDelivery(
                id=f"dlv_{i}", mapping="m", connection="c", object="o", record_key=f"c:o:#{i}"
            ),
        ),
    )


class CountingLedger(Ledger):
    calls: list[int]

    def accept(self, events: Sequence[NewEvent], now: float) -> list[Accepted]:
        self.calls.append(len(events))
        time.sleep(0.02)  # a round trip during which others queue up
        return super().accept(events, now)


def ledger() -> CountingLedger:
    led = CountingLedger(fakeredis.FakeRedis(), prefix="g", queue=HintQueue("q", "g:q:"))
    led.calls = []
    return led


def test_a_lone_request_is_accepted_in_its_own_call() -> None:
    led = ledger()
    (result,) = GroupAcceptor(led).accept([event(1)], time.time())
    assert (result.event_id, result.duplicate) == ("evt_1", False)
    assert led.calls == [1]


def test_concurrent_requests_share_calls_and_each_gets_its_own_results() -> None:
    led = ledger()
    acceptor = GroupAcceptor(led)
    results: dict[int, str] = {}

    def send(i: int) -> None:
        # events 0..9 twice over: the second of each pair is a duplicate of the first
        (result,) = acceptor.accept([event(i, external=f"x{i % 10}")], time.time())
        results[i] = "dup" if result.duplicate else result.event_id

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(led.calls) == 20 and len(led.calls) < 20  # grouped
    assert sorted(r for r in results.values() if r != "dup") == sorted(
        f"evt_{i}" for i in range(20) if results[i] != "dup"
    )
    assert list(results.values()).count("dup") == 10


def test_a_failed_group_call_fails_every_member() -> None:
    led = ledger()

    def down(events: Sequence[NewEvent], now: float) -> list[Accepted]:
        time.sleep(0.02)
        raise LedgerUnavailable("Redis is unreachable")

    led.accept = down  # type: ignore[method-assign]
    acceptor = GroupAcceptor(led)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            acceptor.accept([event(i)], time.time())
        except LedgerUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8
    with pytest.raises(LedgerUnavailable):  # and the acceptor is not left stuck
        acceptor.accept([event(99)], time.time())
