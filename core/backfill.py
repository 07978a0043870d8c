"""Backfill: a polling source's history (or any stretch of it) recorded as events through the
same intake and mappings as its live polls (core/polling.py), resumable and paced so live
traffic keeps its share of the connection.

Its cursor is kept apart from the live poll's (`backfill:{source}` in the ledger), written
after each page's events are accepted: an interrupted backfill resumes where it stood, with
the same `until`. The events are the live poll's (the same change ids), so a backfill over a
stretch the live poll already covered records only duplicates, never a second event.

Pacing, so live traffic keeps its share:
- requests: each listing request takes a token from the connection's shared rate limiter (as
  every delivery and poll does) and one from the backfill's own, at `share` of the
  connection's `rate_limit`, so the backfill never takes more than that share of it;
- writes: before each chunk of a page's events (core/polling.py ACCEPT_CHUNK) is recorded,
  it waits while more than `max_backlog` deliveries are pending or scheduled at its mappings'
  connections, so a live webhook's write never queues behind more than that many (plus one
  chunk) backfilled ones, whatever the page size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.changes import Stamp
from core.config.model import Config
from core.errors import NotPolling
from core.ledger import Ledger
from core.polling import Lister, PollRun, poll_source
from core.vocabulary import ClaimStatus, State

#: how often a waiting backfill looks at the backlog again
BACKLOG_RECHECK_SECONDS = 0.05
#: waiting deliveries at the target connections past which the backfill records no more: the
#: writes a live webhook may find in front of its own (a worker writes a few hundred a second)
DEFAULT_MAX_BACKLOG = 100


@dataclass
class Progress:
    """Where a backfill stands (totals across its interruptions)."""

    source: str
    pages: int
    records: int
    recorded: int
    duplicates: int
    seconds: float
    since_ms: int
    until_ms: int
    cursor_ms: int | None
    done: bool = False
    resumed: bool = False
    error: str = ""

    @property
    def fraction(self) -> float:
        """How much of [since, until] is behind the cursor (the listing is in stamp order)."""
        if self.done:
            return 1.0
        if self.cursor_ms is None or self.until_ms <= self.since_ms:
            return 0.0
        return max(
            0.0, min(1.0, (self.cursor_ms - self.since_ms) / (self.until_ms - self.since_ms))
        )

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "pages": self.pages,
            "records": self.records,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "seconds": round(self.seconds, 3),
        }


def backfill(
    ledger: Ledger,
    config: Config,
    name: str,
    lister: Lister,
    *,
    since: Stamp | None = None,
    until: Stamp | None = None,
    dry_run: bool = False,
    restart: bool = False,
    share: float = 0.5,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Record `name`'s records stamped in [since, until] (default: from the beginning to now),
    resuming an interrupted backfill of it unless `restart`."""
    source = config.sources[name]
    poll = source.poll
    if poll is None:
        raise NotPolling(name)
    stores = ledger.polls
    if restart:
        stores.forget_backfill(name)
    kept = {} if dry_run else stores.backfill_progress(name)
    resumed = "until_ms" in kept
    started = clock()
    if resumed:
        since = Stamp.at(int(kept["since_ms"]))
        until = Stamp.at(int(kept["until_ms"]))
    else:
        since = since or Stamp.at(0)
        until = until or Stamp.at(int(started * 1000))
        if not dry_run:
            stores.note_backfill(
                name, {"since_ms": since.ms, "until_ms": until.ms, "started_at": started}
            )
    base = {k: int(float(kept.get(k) or 0)) for k in ("pages", "records", "recorded", "duplicates")}
    base_seconds = float(kept.get("seconds") or 0)
    connection = config.connections[poll.connection]
    own = (
        (max(1, int(connection.rate_limit.requests * share)), connection.rate_limit.per_seconds)
        if connection.rate_limit
        else None
    )
    targets = sorted({m.connection for m in config.mappings_for(name)})
    done_before = {"pages": 0, "records": 0, "recorded": 0, "duplicates": 0}

    def progress(run: PollRun, *, done: bool = False) -> Progress:
        return Progress(
            source=name,
            pages=base["pages"] + run.pages,
            records=base["records"] + run.records,
            recorded=base["recorded"] + run.recorded,
            duplicates=base["duplicates"] + run.duplicates,
            seconds=base_seconds + clock() - started,
            since_ms=since.ms,
            until_ms=until.ms,
            cursor_ms=run.cursor.stamp.ms if run.cursor else None,
            done=done,
            resumed=resumed,
            error=run.error,
        )

    def on_page(run: PollRun) -> None:
        if not dry_run:  # the totals move with the cursor, so a resume reports them whole
            now = {
                "pages": run.pages,
                "records": run.records,
                "recorded": run.recorded,
                "duplicates": run.duplicates,
            }
            stores.add_backfill(name, {k: now[k] - done_before[k] for k in now})
            done_before.update(now)
        if on_progress is not None:
            on_progress(progress(run))

    def throttle() -> None:
        while own is not None:  # the backfill's own share of the connection's requests
            permit = stores.permit(
                f"{poll.connection}~backfill", who=f"backfill:{name}", now=clock(),
                probe_seconds=1, rate=own,
            )  # fmt: skip
            if permit.status != ClaimStatus.WAIT:
                break
            sleep(permit.wait_ms / 1000)

    def pace() -> None:
        while _backlog(ledger, targets) > max_backlog:
            sleep(BACKLOG_RECHECK_SECONDS)

    while True:
        run = poll_source(
            ledger,
            config,
            name,
            lister,
            budget_seconds=float("inf"),
            backfill=True,
            since=since,
            until=until,
            dry_run=dry_run,
            on_page=on_page,
            throttle=throttle,
            pace=pace,
            clock=clock,
            sleep=sleep,
        )
        if run.caught_up or run.error:
            break
        # paused, cooling down, circuit open or the rate limit: wait, then carry on (what
        # this run did joins the totals; the next run counts afresh)
        for key in base:
            base[key] += getattr(run, key)
            done_before[key] = 0
        base_seconds += clock() - started
        started = clock()
        sleep(1.0)
    final = progress(run, done=run.caught_up)
    if not dry_run:
        stores.note_backfill(name, {"seconds": final.seconds})
        if final.done:
            stores.forget_backfill(name)  # finished: a next backfill starts afresh
    return final


def _backlog(ledger: Ledger, connections: list[str]) -> int:
    """Deliveries still waiting at these connections (pending or scheduled)."""
    total = 0
    for name in connections:
        counts = ledger.connection_state(name)["counts"]
        total += int(counts.get(State.PENDING, 0)) + int(counts.get(State.SCHEDULED, 0))
    return total
