"""The receiver's counters: every answer by route, status class and source, and the webhooks'
rejections by reason. Counted in the process, added to the ledger's hub-wide counters (the
`stats:*` hashes /metrics reads) by a background thread about once a second.

Why not add to Redis as each answer goes out (as rejections once were): that is a round trip
in the hot path for every answer, and the answers that matter most here, 503s, are given
exactly when Redis is not answering. Why not per-process Prometheus counters alone: a scrape
reaches one of several gunicorn processes on one of several hosts, while /metrics reports the
whole hub's numbers (the 2xx outcomes are counted inside the ledger's accept script). So a
count costs a lock and a dict update; counts that cannot be added (Redis down) stay here and
go with the next flush. A process killed with SIGKILL loses at most its last second of counts.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable

from core.ledger import Ledger
from core.ledger.keys import StatsHash
from core.vocabulary import WebhookOutcome

log = logging.getLogger("crmhub.metrics")

#: the routes answers are counted under; any other path is "other" (never a URL's own text)
ROUTES = ("webhooks", "healthz", "readyz", "metrics")

_live: weakref.WeakSet[AnswerCounts] = weakref.WeakSet()


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class AnswerCounts:
    def __init__(
        self, ledger: Ledger, sources: frozenset[str] | set[str], interval: float = 1.0
    ) -> None:
        self._ledger = ledger
        self._sources = frozenset(sources)
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: Counter[tuple[StatsHash, str]] = Counter()
        self._flusher_pid: int | None = None
        _live.add(self)

    def count_sources(self, sources: Iterable[str]) -> None:
        """The configured sources (after a reload): any other source is labelled `unknown`."""
        self._sources = frozenset(sources)

    def labels(self, path: str) -> tuple[str, str]:
        """(route, source) for a request path, from bounded sets: the source only when it is
        configured (`unknown` otherwise), "" on routes that have none."""
        if path.startswith("/webhooks/"):
            source = path[len("/webhooks/") :]
            return "webhooks", source if source in self._sources else "unknown"
        route = path[1:]
        return (route if route in ROUTES else "other"), ""

    def answer(self, path: str, status: int) -> None:
        route, source = self.labels(path)
        self.add(StatsHash.ANSWERS, f"{route}|{status_class(status)}|{source}")

    def outcome(self, source: str, outcome: WebhookOutcome) -> None:
        """A webhook of a configured source refused or failed (unauthorized, malformed...);
        the ledger's accept script counts the others."""
        self.add(StatsHash.WEBHOOKS, f"{source}|{outcome}")

    def add(self, name: StatsHash, field: str) -> None:
        with self._lock:
            self._pending[(name, field)] += 1
            if self._flusher_pid != os.getpid():  # first count in this process (or fork)
                self._flusher_pid = os.getpid()
                _start_flusher(self)

    def flush(self) -> bool:
        """Add what this process counted to the hub-wide counters; False (and kept for the
        next flush) when the ledger cannot take them."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return True
        try:
            self._ledger.add_stats(pending)
        except Exception as exc:  # never lose the counts, never break the caller
            log.debug("answer counts not flushed (kept for the next try): %s", exc)
            with self._lock:
                self._pending.update(pending)
            return False
        return True


def _start_flusher(counts: AnswerCounts) -> None:
    # The thread holds the counts only weakly: an app that is gone (tests create many) takes
    # its thread with it.
    ref = weakref.ref(counts)
    interval = counts._interval

    def run() -> None:
        while True:
            time.sleep(interval)
            target = ref()
            if target is None:
                return
            target.flush()
            del target

    threading.Thread(target=run, name="crmhub-answer-counts", daemon=True).start()


@atexit.register
def _flush_at_exit() -> None:
    for counts in list(_live):
        with contextlib.suppress(Exception):
            counts.flush()
