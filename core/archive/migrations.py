"""The archive's schema, as numbered migrations: each applied once, in order, in its own
transaction, and recorded in `crmhub_archive_schema`. `crmhub archive migrate` runs them, and
so does every process that opens the archive (core.archive.open_archive), so a new version's
tables are there before its code uses them. A migration is never edited once released: a
change is a new one.

Times are epoch milliseconds (BIGINT), as in the ledger; JSON is stored as text, the same in
both databases. One SQL for SQLite and PostgreSQL (core/archive/database.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.archive.database import Database, Transaction


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "archived events, their deliveries, the emails in their bodies, row counts",
        (
            """CREATE TABLE archived_events (
                id TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                type TEXT,
                external_id TEXT NOT NULL,
                received_at BIGINT NOT NULL,
                occurred_at TEXT,
                state TEXT NOT NULL,
                done_at BIGINT NOT NULL,
                archived_at BIGINT NOT NULL,
                headers TEXT NOT NULL,
                body TEXT NOT NULL
            )""",
            "CREATE INDEX archived_events_received ON archived_events (received_at)",
            "CREATE INDEX archived_events_source ON archived_events (source, received_at)",
            "CREATE INDEX archived_events_type ON archived_events (type, received_at)",
            "CREATE INDEX archived_events_state ON archived_events (state, received_at)",
            "CREATE INDEX archived_events_external ON archived_events (external_id)",
            """CREATE TABLE archived_deliveries (
                id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                mapping TEXT NOT NULL,
                connection TEXT NOT NULL,
                state TEXT NOT NULL,
                updated_at BIGINT,
                discard_reason TEXT,
                history TEXT NOT NULL
            )""",
            "CREATE INDEX archived_deliveries_event ON archived_deliveries (event_id)",
            "CREATE INDEX archived_deliveries_state ON archived_deliveries (state, event_id)",
            """CREATE TABLE archived_event_emails (
                email TEXT NOT NULL,
                event_id TEXT NOT NULL,
                PRIMARY KEY (email, event_id)
            )""",
            "CREATE INDEX archived_event_emails_event ON archived_event_emails (event_id)",
            "CREATE TABLE archive_counts (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO archive_counts (name, value) VALUES ('events', 0)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
#: PostgreSQL: one migrating process at a time (SQLite: BEGIN IMMEDIATE already is)
_ADVISORY_LOCK = 0x63726D68  # "crmh"


def _version(tx: Transaction) -> int:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS crmhub_archive_schema ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )
    rows = tx.execute("SELECT MAX(version) FROM crmhub_archive_schema")
    return int(rows[0][0] or 0)


def schema_version(db: Database) -> int:
    with db.transaction() as tx:
        return _version(tx)


def migrate(db: Database) -> list[Migration]:
    """Apply every migration the database lacks, in order; returns those applied. Safe to
    run from several processes at once: each migration is applied once."""
    applied = []
    for migration in MIGRATIONS:
        with db.transaction() as tx:
            if db.postgres:
                tx.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _ADVISORY_LOCK})
            if _version(tx) >= migration.version:
                continue
            for statement in migration.statements:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO crmhub_archive_schema (version, description, applied_at) "
                "VALUES (:version, :description, :at)",
                {
                    "version": migration.version,
                    "description": migration.description,
                    "at": int(time.time() * 1000),
                },
            )
            applied.append(migration)
    return applied
