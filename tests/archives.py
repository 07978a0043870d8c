"""The archive's databases for tests: a SQLite file in the test's directory, or a PostgreSQL
schema of the test's own on the server at CRMHUB_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test, trust auth, as on CI), dropped afterwards (other
test runs share the server). PostgreSQL that does not answer is a skip on a developer's
machine and a failure on CI (CI set), where it always runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

POSTGRES_URL = os.environ.get(
    "CRMHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def postgres_answers() -> bool:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema; yields a URL whose connections use it (search_path)."""
    if not postgres_answers():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL does not answer at {POSTGRES_URL} (CI runs the archive on it)")
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL} (CI runs these)")
    schema = f"crmhub_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def archive_url(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{(directory / 'archive.sqlite3').absolute()}"
    else:
        with postgres_schema() as url:
            yield url
