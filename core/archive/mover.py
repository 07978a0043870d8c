"""The move from hot to cold: events done for good for longer than CRMHUB_HOT_RETENTION_SECONDS
leave Redis for the archive, in bounded batches, run by the scheduler (workers/archiver.py).

Each batch: read the oldest done events from Redis (ledger.terminal_batch: an index range,
never a scan), write them to the archive and commit (idempotent: a batch written twice leaves
the same rows), then remove them from Redis (ledger.evict), each only if it is still exactly
what was written. The order is the crash-safety argument: until the archive has committed, the
event is still in Redis; after, it is in the archive, and Redis lets go of it only then. A
crash between the two leaves it in both (the next pass writes it again and removes it), never
in neither. Then archive retention: events received more than CRMHUB_ARCHIVE_RETENTION_DAYS
ago are deleted from the archive, a batch per transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.archive.store import Archive
from core.ledger import Ledger
from core.settings import Settings

log = logging.getLogger("crmhub.archive")

#: the archive lock's lifetime, renewed after every batch: an archiver that dies holds up
#: the next one at most this long
LOCK_TTL_SECONDS = 5.0
#: one pass stops after this much work (the next tick of the scheduler goes on), so the
#: control queue's other tasks (the sweep) are not kept waiting behind a large backlog
PASS_SECONDS = 30.0


@dataclass
class PassResult:
    moved: int = 0  # events that left Redis for the archive
    written: int = 0  # events new to the archive (fewer than moved after a crash's rerun)
    expired: int = 0  # events deleted from the archive by its retention
    skipped: bool = False  # another archiver held the lock
    caught_up: bool = True  # nothing more was due when the pass ended

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "moved": self.moved,
            "written": self.written,
            "expired": self.expired,
            "skipped": self.skipped,
            "caught_up": self.caught_up,
        }


def archive_pass(
    ledger: Ledger,
    archive: Archive,
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    budget_seconds: float = PASS_SECONDS,
) -> PassResult:
    """One pass of the archiver: move what is due, then apply the archive's retention."""
    result = PassResult()
    began = time.monotonic()
    with ledger.archive_lock(LOCK_TTL_SECONDS) as lock:
        if lock is None:
            result.skipped = True
            return result
        size = settings.archive_batch_size
        while True:
            now = clock()
            batch = ledger.terminal_batch(now - settings.hot_retention_seconds, size)
            if batch:
                result.written += archive.write(batch, now)  # committed before Redis lets go
                result.moved += ledger.evict(batch, now)
            if len(batch) < size:
                break
            if time.monotonic() - began > budget_seconds or not lock.renew():
                result.caught_up = False
                break
        while result.caught_up:
            expired = archive.expire(clock() - settings.archive_retention_days * 86400, size)
            result.expired += expired
            if expired < size:
                break
            if time.monotonic() - began > budget_seconds or not lock.renew():
                result.caught_up = False
    if result.moved or result.expired:
        log.info(
            "archive: %d events moved to the archive (%d new there), %d past retention deleted",
            result.moved,
            result.written,
            result.expired,
        )
    return result


def archive_lag_seconds(
    ledger: Ledger, hot_retention_seconds: float, now: float | None = None
) -> float:
    """How far the archiver is behind: how long past its hot retention the oldest done event
    still in Redis is (0 when nothing is overdue). What an "archive falling behind" alert
    reads: a lag that keeps growing means Redis memory does too."""
    oldest = ledger.oldest_done_at()
    if oldest is None:
        return 0.0
    now = time.time() if now is None else now
    return max(0.0, now - oldest - hot_retention_seconds)


def oldest_done_age_seconds(ledger: Ledger, now: float | None = None) -> float:
    """The age of the oldest done event still in Redis (0 when there is none)."""
    oldest = ledger.oldest_done_at()
    now = time.time() if now is None else now
    return 0.0 if oldest is None else max(0.0, now - oldest)
