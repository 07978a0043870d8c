"""Polling sources on the scheduler's clock (core/polling.py does the work).

The beat runs `dispatch_polls` every second: each polling source whose next poll is due gets
a `crmhub.poll_source` task (its next time is pushed a whole `every` ahead first, so a slow
poll is not sent twice). The task polls under the source's lock, single-flight across every
worker and host, then sets when the next poll is due: `every` after this one, or at once when
this run stopped with more to list (its time budget ran out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.polling import RUN_BUDGET_SECONDS, PollRun, poll_source, polling_sources
from workers.runtime import WorkerRuntime

log = logging.getLogger("crmhub.poller")

#: a run lists for at most this share of the source's lock (CRMHUB_POLL_LOCK_SECONDS), so
#: the lock outlives the longest run (its budget, plus a listing's timeouts)
RUN_SHARE_OF_LOCK = 0.25


def dispatch_polls(
    rt: WorkerRuntime, send: Callable[[str], None], now: float | None = None
) -> list[str]:
    """Send a poll task for each polling source that is due; returns their names."""
    now = time.time() if now is None else now
    sent = []
    for name in polling_sources(rt.config):
        poll = rt.config.sources[name].poll
        assert poll is not None
        if rt.ledger.polls.due(name, now):
            rt.ledger.polls.reserve(name, now + poll.every)
            send(name)
            sent.append(name)
    return sent


def run_poll(rt: WorkerRuntime, name: str) -> PollRun | None:
    """One poll of `name` if no other worker is polling it (None when one is)."""
    source = rt.config.sources.get(name)
    if source is None or source.poll is None:
        return None  # the configuration changed since the task was sent
    lock_seconds = rt.settings.poll_lock_seconds
    budget = min(RUN_BUDGET_SECONDS, lock_seconds * RUN_SHARE_OF_LOCK)
    with rt.ledger.polls.lock(name, lock_seconds) as held:
        if not held:
            return None
        connector = rt.connector(source.poll.connection)
        run = poll_source(rt.ledger, rt.config, name, connector, budget_seconds=budget)
        finished = time.time()
        more = not run.caught_up and not run.error and not run.stopped
        next_at = finished if more else finished + source.poll.every
        problem = run.error or (
            f"not polled: the connection's {run.stopped}" if run.stopped else ""
        )
        rt.ledger.polls.polled(name, finished, next_at, problem)
        if run.recorded or run.error:
            log.log(
                logging.WARNING if run.error else logging.INFO,
                "poll %s: %d pages, %d records, %d new, %d already recorded%s",
                name,
                run.pages,
                run.records,
                run.recorded,
                run.duplicates,
                f"; {run.error}" if run.error else "",
                extra={"source": name, "connection": source.poll.connection},
            )
        return run
