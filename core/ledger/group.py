"""Group commit for the receiver: concurrent requests of one process share a script call.

Under load, a receiver process has several requests in flight (gunicorn threads). Each one's
accept is a Redis round trip plus a script run; while one is on the wire, the others would
wait for their own. Instead, the first request to arrive leads: it accepts everything queued
so far in one atomic script call (the accept script takes a list of events already) and hands
each request its own results; requests that arrive meanwhile form the next group, led by the
first of them. Nobody waits on a timer, so a lone request costs exactly what it did before.
A group's failure (Redis down) is every member's failure: each answers 503, none 2xx.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from core.ledger.model import NewEvent
from core.ledger.replies import Accepted
from core.ledger.store import Ledger


class _Slot:
    """One request's events, and the lock its thread waits on until a leader is done with it.

    A bare lock, taken at creation and released by the leader, is the cheapest hand-off the
    runtime offers (a threading.Event is a Condition over two locks plus a list of waiters);
    under load every follower pays for one.
    """

    __slots__ = ("_done", "error", "events", "lead", "now", "results")

    def __init__(self, events: Sequence[NewEvent], now: float) -> None:
        self.events = events
        self.now = now
        self._done = threading.Lock()
        self._done.acquire()
        self.lead = False
        self.results: list[Accepted] = []
        self.error: BaseException | None = None

    def wait(self) -> None:
        self._done.acquire()

    def wake(self) -> None:
        self._done.release()


class GroupAcceptor:
    def __init__(self, ledger: Ledger, max_events: int = 64) -> None:
        self.ledger = ledger
        self.max_events = max_events
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._leading = False

    def accept(self, events: Sequence[NewEvent], now: float) -> list[Accepted]:
        slot = _Slot(events, now)
        with self._lock:
            self._queue.append(slot)
            follower = self._leading
            self._leading = True
        if follower:
            slot.wait()  # accepted by a leader, or woken to lead
            if not slot.lead:
                return self._outcome(slot)
        self._lead()
        return self._outcome(slot)

    def _lead(self) -> None:
        with self._lock:
            group: list[_Slot] = []
            size = 0
            while self._queue and (
                not group or size + len(self._queue[0].events) <= self.max_events
            ):
                slot = self._queue.pop(0)
                group.append(slot)
                size += len(slot.events)
        try:
            results = self.ledger.accept(
                [e for s in group for e in s.events], max(s.now for s in group)
            )
        except BaseException as exc:  # every member answers for it (503), none is lost
            for slot in group:
                slot.error = exc
        else:
            start = 0
            for slot in group:
                slot.results = results[start : start + len(slot.events)]
                start += len(slot.events)
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True  # it wakes up and accepts the next group
                successor.wake()
            else:
                self._leading = False
        for slot in group:
            if not slot.lead:
                slot.wake()

    @staticmethod
    def _outcome(slot: _Slot) -> list[Accepted]:
        if slot.error is not None:
            raise slot.error
        return slot.results
