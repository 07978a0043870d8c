"""The scheduler's archive pass (Celery beat triggers it on the control queue, like the sweep):
events done for good longer than CRMHUB_HOT_RETENTION_SECONDS move from Redis to the archive
(core/archive/mover.py has the how and the crash-safety argument)."""

from __future__ import annotations

import threading

from core.archive import Archive, open_archive
from core.archive.mover import archive_pass
from workers.runtime import WorkerRuntime

_lock = threading.Lock()
_archive: Archive | None = None


def process_archive(rt: WorkerRuntime) -> Archive:
    """This process's archive, opened (and its schema migrated) on first use: after the
    prefork, so no connection is shared across a fork."""
    global _archive
    with _lock:
        if _archive is None:
            _archive = open_archive(rt.settings)
        return _archive


def close_archive() -> None:
    global _archive
    with _lock:
        if _archive is not None:
            _archive.close()
        _archive = None


def archive(rt: WorkerRuntime) -> dict[str, int | bool]:
    return archive_pass(rt.ledger, process_archive(rt), rt.settings).as_dict()
