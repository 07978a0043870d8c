"""Single-flight across every host: a Redis lock with a TTL, taken without waiting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from core.ledger.translate import translate_redis_errors


@contextlib.contextmanager
def single_flight(client: redis.Redis, key: str, ttl_seconds: float) -> Iterator[bool]:
    """Yields whether this caller holds the lock at `key` (for at most `ttl_seconds`, so a
    holder that dies never blocks the others); released on exit if still held."""
    lock = client.lock(key, timeout=ttl_seconds, blocking=False)
    with translate_redis_errors():
        held = bool(lock.acquire())
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(redis.exceptions.LockError):  # expired meanwhile
                lock.release()
