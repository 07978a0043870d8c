"""The in-memory state every fake keeps behind one lock: the request log (with a sequence
number that survives resets, so a log cursor taken before a reset stays valid), the counters
and the injected faults."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable
from itertools import islice
from typing import Any, Generic, TypeVar

from connectors.fakes.app import Json, Response
from connectors.fakes.faults import FaultBase

LOG_LIMIT = 200_000

F = TypeVar("F", bound=FaultBase)


class StateBase(ABC, Generic[F]):
    """What every fake's state has; each fake adds its records and counters."""

    lock: threading.Lock
    seq: int
    fault_ids: int
    log: deque[Json]
    faults: list[F]
    by_fault: Counter[str]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0  # never reset, so a log cursor taken before a reset stays valid
        self.fault_ids = 0

    @abstractmethod
    def clear(self) -> None:
        """Each fake defines this."""

    @abstractmethod
    def parse_fault(self, spec: Any, fault_id: int) -> F:
        """Each fake defines this."""

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        """The fault modes that act at once instead of hitting requests (tokens expired, a
        credential revoked): mode -> the act, answering what it did. None by default."""
        return {}

    def install_faults(self, parsed: list[F]) -> tuple[list[F], Json]:
        """(the faults to keep, extra keys of the answer) for newly parsed faults, under the
        lock: an immediate mode acts now and is not kept."""
        acts = self.immediate_faults()
        kept: list[F] = []
        applied: list[Json] = []
        for fault in parsed:
            act = acts.get(fault.mode)
            if act is None:
                kept.append(fault)
            else:
                applied.append({"mode": fault.mode, **act()})
        return kept, ({"applied": applied} if acts else {})

    def emptied(self, store: str) -> int:
        """Empty a credential store (a dict or set attribute); how many it held."""
        held = getattr(self, store)
        setattr(self, store, type(held)())
        return len(held)

    # --- faults -------------------------------------------------------------------------------

    def first_fault(self, match: Callable[[F], bool]) -> F | None:
        """The first active fault that matches and fires for this request (counts the hit)."""
        if not self.faults:
            return None
        now = time.monotonic()
        with self.lock:
            for fault in self.faults:
                if not fault.active(now) or not match(fault) or not fault.fires():
                    continue
                fault.hits += 1
                self.by_fault[fault.mode] += 1
                return fault
        return None

    def add_faults(self, body: Any) -> Response:
        specs = body if isinstance(body, list) else [body]
        with self.lock:
            first = self.fault_ids + 1
            parsed = [self.parse_fault(spec, first + i) for i, spec in enumerate(specs)]
            self.fault_ids += len(parsed)
            added, extra = self.install_faults(parsed)
            self.faults.extend(added)
            now = time.monotonic()
            answer: Json = {"added": [f.describe(now) for f in added], **extra}
            answer["faults"] = [f.describe(now) for f in self.faults]
            return Response(201, answer)

    def list_faults(self) -> Json:
        with self.lock:
            now = time.monotonic()
            return {"faults": [f.describe(now) for f in self.faults]}

    def clear_faults(self) -> Json:
        with self.lock:
            self.faults = []
            return {"faults": []}

    def active_faults(self, now: float) -> int:
        return sum(f.active(now) for f in self.faults)

    # --- control reads ------------------------------------------------------------------------

    def log_since(self, since: int, limit: int | None) -> Json:
        with self.lock:
            start = 0
            if self.log:
                start = min(max(since - self.log[0]["seq"] + 1, 0), len(self.log))
            stop = None if limit is None else start + limit
            return {"entries": list(islice(self.log, start, stop)), "last_seq": self.seq}

    @abstractmethod
    def stats(self) -> Json:
        """Each fake defines this."""

    def reset(self) -> Json:
        with self.lock:
            self.clear()
            return {"ok": True, "last_seq": self.seq}


def new_log() -> deque[Json]:
    return deque(maxlen=LOG_LIMIT)
