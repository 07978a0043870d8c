"""Redis errors, translated once, at the ledger's edge, into what callers act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from core.errors import LedgerUnavailable


@contextmanager
def translate_redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise LedgerUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        # OOM under noeviction, MISCONF (AOF write failing), READONLY replica: all mean the
        # store cannot take the write right now, which senders should retry.
        if str(exc).startswith(("OOM", "MISCONF", "READONLY", "LOADING", "BUSY")):
            raise LedgerUnavailable(f"Redis refused the write: {exc}") from exc
        raise
