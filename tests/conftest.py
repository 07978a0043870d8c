"""Shared fixtures.

Unit tests use fakeredis. Integration and end-to-end tests use a real Redis:
CRMHUB_TEST_REDIS_URL if set, else 127.0.0.1:6379 when it answers (as on CI), else an embedded
redis-server this suite starts itself, so they never skip. Each test gets its own key prefix
and deletes exactly the keys under it afterwards, never touching data it did not create.
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from archives import BACKENDS, archive_url  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from app.cli import main  # noqa: E402
from app.cli.common import CliContext  # noqa: E402
from core.config import Config  # noqa: E402
from core.embedded_redis import EmbeddedRedis  # noqa: E402
from core.ledger import Ledger  # noqa: E402
from core.queue import HintQueue  # noqa: E402
from core.settings import Settings  # noqa: E402


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def real_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CRMHUB_TEST_REDIS_URL")
    if url:
        yield url
        return
    if _reachable("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def text(reply: object) -> str:
    """A Redis reply as text. The suite's clients answer bytes (str with decode_responses) and
    redis-py types every reply as either: one place that says which it is."""
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, str):
        return reply
    raise AssertionError(f"expected text from Redis, got {reply!r}")


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)


@pytest.fixture
def key_prefix() -> str:
    return f"crmhub-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def real_redis(real_redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(real_redis_url)
    try:
        yield client
    finally:
        delete_prefix(client, key_prefix)
        client.close()


@pytest.fixture(params=["fakeredis", "redis"])
def either_redis(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The test once on fakeredis, once on a real Redis (real_redis: it deletes exactly this
    test's key_prefix afterwards, so the test keeps its keys under that prefix)."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
    else:
        yield request.getfixturevalue("real_redis")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config (dedented) into the test's directory and return its path."""

    def write(text: str, name: str = "crmhub.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def make_settings(
    config_path: Path, key_prefix: str, redis_url: str | None = None, **env: str
) -> Settings:
    environ = {"CRMHUB_CONFIG": str(config_path), "CRMHUB_KEY_PREFIX": key_prefix, **env}
    if redis_url:
        environ["CRMHUB_REDIS_URL"] = redis_url
    return Settings.from_env(environ)


def hub_ledger(settings: Settings, client: redis.Redis | None = None) -> Ledger:
    """The ledger a hub with `settings` uses (as its processes build it), on `client` (a
    fresh fakeredis unless given)."""
    return Ledger(
        client if client is not None else fakeredis.FakeRedis(),
        prefix=settings.key_prefix,
        queue=HintQueue(settings.celery_queue, settings.celery_keyprefix),
        dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
    )


def crmhub(
    settings: Settings,
    *args: str,
    ledger: Ledger | None = None,
    config: Config | None = None,
    stdin: str | None = None,
) -> Result:
    """`crmhub ARGS` in-process with `settings` (and the `ledger` or `config` given, instead
    of the ones the command would build from them)."""
    ctx = CliContext(_settings=settings, _config=config, _ledger=ledger)
    return CliRunner().invoke(main, list(args), obj=ctx, input=stdin)


@pytest.fixture(params=BACKENDS)
def archive_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The archive's URL, once per database (tests/archives.py): SQLite and PostgreSQL."""
    with archive_url(request.param, tmp_path) as url:
        yield url
