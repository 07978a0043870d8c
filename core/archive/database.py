"""The archive's database: a SQLite file (the default) or PostgreSQL (psycopg 3), behind one
small interface and one SQL spelling.

Queries are written once, with named parameters as `:name` (SQLite's style), and turned into
psycopg's `%(name)s` for PostgreSQL; both run the same `INSERT ... ON CONFLICT` upserts,
`CREATE ... IF NOT EXISTS` and transactional DDL. sqlite3 and psycopg errors that mean the
database cannot be reached or written become ArchiveUnavailable here, once; a connection
that failed so is opened again on the next use.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from core.errors import ArchiveUnavailable

_NAMED = re.compile(r"(?<![:\w]):(\w+)")
#: the errors of either driver that say the database is out of reach (or busy past the wait),
#: and the file system's (a SQLite directory that cannot be made)
UNAVAILABLE = (
    OSError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

Params = Mapping[str, Any]


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/file.db`, `sqlite:////absolute/file.db` (SQLAlchemy's spelling)."""
    rest = url.removeprefix("sqlite://")
    if not rest.startswith("/") or len(rest) < 2:
        raise ArchiveUnavailable(f"{url!r}: expected sqlite:///path/to/archive.sqlite3")
    return Path(rest[1:])


class Transaction:
    """Statements run inside one transaction (Database.transaction)."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor = cursor
        self._postgres = postgres

    def _sql(self, sql: str) -> str:
        return _NAMED.sub(r"%(\1)s", sql) if self._postgres else sql

    def execute(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""
        self._cursor.execute(self._sql(sql), params or {})
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._cursor.executemany(self._sql(sql), rows)

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        return int(self._cursor.rowcount)


class Database:
    """One connection to the archive's database, shared by a process's threads one
    transaction at a time (the archive is written by one archiver, read by operators)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite:") else "postgresql"
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def describe(self) -> str:
        """Where the archive is, without a password."""
        if not self.postgres:
            return f"SQLite {sqlite_path(self.url)}"
        return "PostgreSQL " + re.sub(r"//[^@/]*@", "//", self.url)

    def _connect(self) -> Any:
        if self.postgres:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        path = sqlite_path(self.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        # WAL: operators' reads go on while the archiver writes; NORMAL is durable across a
        # process crash (what the move relies on: the archive write commits before evict)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises. Writers
        take the write lock up front (SQLite: BEGIN IMMEDIATE), so two never deadlock."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                if self.postgres:
                    with self._conn.transaction(), self._conn.cursor() as cursor:
                        yield Transaction(cursor, postgres=True)
                else:
                    cursor = self._conn.cursor()
                    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        yield Transaction(cursor, postgres=False)
                    except BaseException:
                        self._conn.rollback()
                        raise
                    self._conn.commit()
            except UNAVAILABLE as exc:
                self._drop()
                raise ArchiveUnavailable(f"the archive ({self.describe()}): {exc}") from exc

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
