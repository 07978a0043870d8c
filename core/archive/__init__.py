"""The archive: where events done for good go when they leave Redis (hot and cold storage).

A SQLite file under CRMHUB_VAR_DIR by default, PostgreSQL when CRMHUB_ARCHIVE_URL names one
(core/archive/database.py); versioned schema migrations (migrations.py) run by `crmhub archive
migrate` and by every process as it opens the archive; the move out of Redis (mover.py), the
reads that find an event in either store (lookup.py) and the erasure of a person's events
(erasure.py).
"""

from __future__ import annotations

from core.archive.database import Database
from core.archive.migrations import migrate
from core.archive.store import Archive, EventQuery
from core.settings import Settings


def open_archive(settings: Settings, *, migrated: bool = True) -> Archive:
    """The hub's archive, its schema brought up to date first (unless `migrated` is False:
    `crmhub archive migrate` applies them itself and reports what it did)."""
    db = Database(settings.archive_location)
    if migrated:
        migrate(db)
    return Archive(db)


__all__ = ["Archive", "Database", "EventQuery", "open_archive"]
