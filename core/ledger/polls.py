"""What polling sources and backfills keep in the ledger's Redis (`ledger.polls`): each
source's durable cursor and its last poll's outcome, one poll of a source at a time, a
backfill's progress, and the permit a read of a connection needs (permit.lua: the pause,
cooldown, circuit and rate limit deliveries obey) with what its outcome tells of the
connection (read_outcome.lua).

A cursor is the stamp of the newest record recorded (the vendor's text and its instant) and,
when a page ended inside one stamp, the vendor's page cursor at that stamp. It is written only
after the page's events are accepted, so a crash between the two lists that page again (its
events are deduplicated by their change ids) and never skips one.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from core.changes import Stamp
from core.ledger import replies
from core.ledger.keys import LedgerKeys
from core.ledger.locks import single_flight
from core.ledger.rates import RateSpec, rate_params
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text


@dataclass(frozen=True)
class Cursor:
    stamp: Stamp
    after: str | None = None  # the vendor's page cursor within `stamp`, when a page ended there


@dataclass(frozen=True)
class PollStatus:
    """A polling source as `crmhub status` shows it."""

    cursor: Cursor | None
    polled_at: float | None
    ok_at: float | None
    error: str
    error_at: float | None
    listed: int  # records listed since the source started
    next_at: float | None


def _decoded(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def _cursor(fields: Mapping[str, str]) -> Cursor | None:
    if "ms" not in fields:
        return None
    return Cursor(Stamp(fields["stamp"], int(fields["ms"])), fields.get("after") or None)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


class PollStore:
    def __init__(self, client: redis.Redis, keys: LedgerKeys, run: Callable[..., Any]) -> None:
        self.redis = client
        self.keys = keys
        self._run = run  # the ledger's script runner

    # the cursor -----------------------------------------------------------------------
    def cursor(self, source: str, *, backfill: bool = False) -> Cursor | None:
        with translate_redis_errors():
            raw = self.redis.hgetall(self._key(source, backfill))
        return _cursor(_decoded(raw))

    def advance(self, source: str, cursor: Cursor, listed: int, *, backfill: bool = False) -> None:
        """The cursor after a page whose events are accepted (never before)."""
        key = self._key(source, backfill)
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(
                key,
                mapping={
                    "stamp": cursor.stamp.text,
                    "ms": cursor.stamp.ms,
                    "after": cursor.after or "",
                },
            )
            pipe.hincrby(key, "listed", listed)
            pipe.execute()

    def start(self, source: str, stamp: Stamp) -> Cursor:
        """A new polling source starts from `stamp` (now); a cursor already there is kept."""
        key = self.keys.poll_cursor(source)
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.hsetnx(key, "ms", stamp.ms)
            pipe.hsetnx(key, "stamp", stamp.text)
            pipe.execute()
        found = self.cursor(source)
        assert found is not None
        return found

    def _key(self, source: str, backfill: bool) -> str:
        return self.keys.backfill_cursor(source) if backfill else self.keys.poll_cursor(source)

    # a poll's outcome -----------------------------------------------------------------
    def polled(self, source: str, now: float, next_at: float, error: str = "") -> None:
        key = self.keys.poll_cursor(source)
        fields: dict[str, str | float] = {"polled_at": now, "next_at": next_at}
        fields |= {"error": error[:1000], "error_at": now} if error else {"ok_at": now, "error": ""}
        with translate_redis_errors():
            self.redis.hset(key, mapping=fields)  # type: ignore[arg-type]

    def status(self, source: str) -> PollStatus:
        with translate_redis_errors():
            fields = _decoded(self.redis.hgetall(self.keys.poll_cursor(source)))
        return PollStatus(
            cursor=_cursor(fields),
            polled_at=_float(fields.get("polled_at")),
            ok_at=_float(fields.get("ok_at")),
            error=fields.get("error", ""),
            error_at=_float(fields.get("error_at")),
            listed=int(fields.get("listed") or 0),
            next_at=_float(fields.get("next_at")),
        )

    def due(self, source: str, now: float) -> bool:
        with translate_redis_errors():
            next_at = self.redis.hget(self.keys.poll_cursor(source), "next_at")
        return next_at is None or float(text(next_at)) <= now

    def reserve(self, source: str, next_at: float) -> None:
        """A poll of `source` was sent: the next one is not due before `next_at` (the run
        sets the real time when it ends)."""
        with translate_redis_errors():
            self.redis.hset(self.keys.poll_cursor(source), "next_at", next_at)

    def lock(self, source: str, ttl_seconds: float) -> contextlib.AbstractContextManager[bool]:
        """One poll of a source at a time, across every worker and host."""
        return single_flight(self.redis, self.keys.poll_lock(source), ttl_seconds)

    # a backfill's progress ------------------------------------------------------------
    def backfill_progress(self, source: str) -> dict[str, str]:
        with translate_redis_errors():
            return _decoded(self.redis.hgetall(self.keys.backfill_cursor(source)))

    def note_backfill(self, source: str, fields: Mapping[str, str | float]) -> None:
        with translate_redis_errors():
            self.redis.hset(self.keys.backfill_cursor(source), mapping=dict(fields))  # type: ignore[arg-type]

    def add_backfill(self, source: str, counts: Mapping[str, int | float]) -> None:
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            for name, n in counts.items():
                if isinstance(n, float):
                    pipe.hincrbyfloat(self.keys.backfill_cursor(source), name, n)
                else:
                    pipe.hincrby(self.keys.backfill_cursor(source), name, n)
            pipe.execute()

    def forget_backfill(self, source: str) -> None:
        with translate_redis_errors():
            self.redis.delete(self.keys.backfill_cursor(source))

    # the connection's switches --------------------------------------------------------
    def permit(
        self,
        connection: str,
        *,
        who: str,
        now: float,
        probe_seconds: float,
        rate: RateSpec | None,
    ) -> replies.Permit:
        request: dict[str, Any] = {
            "conn": connection,
            "probe": who,
            "probe_ms": int(probe_seconds * 1000),
            "read": f"{who}|{uuid.uuid4().hex}",  # this listing's own place in the window
        }
        if rate is not None:
            request["rate"] = rate_params(rate)
        return replies.permit(self._run("permit", now, **request))

    def read_room(self, connection: str, *, who: str, now: float, rate: RateSpec) -> replies.Permit:
        """A place in the connection's rate limit for a read a delivery makes besides its
        write (its claim obeyed the pause, the cooldown and the circuit already, and took the
        write's place): claimed, or wait."""
        return replies.permit(
            self._run(
                "permit",
                now,
                conn=connection,
                read=f"{who}|{uuid.uuid4().hex}",
                rate=rate_params(rate),
                rate_only=True,
            )
        )

    def read_outcome(
        self,
        connection: str,
        *,
        now: float,
        ok: bool,
        transient: bool = False,
        error: str = "",
        cooldown_until: float = 0.0,
        pause: Mapping[str, Any] | None = None,
        breaker: tuple[int, float, float] = (5, 5.0, 300.0),
    ) -> bool:
        """Record what a read's outcome tells of the connection; whether it newly paused."""
        threshold, open_s, max_open_s = breaker
        return replies.read_outcome(
            self._run(
                "read_outcome",
                now,
                conn=connection,
                ok=ok,
                transient=transient,
                error=error[:2000],
                cooldown_until=int(cooldown_until * 1000),
                pause=json.dumps(pause) if pause else "",
                breaker={
                    "threshold": threshold,
                    "open_ms": int(open_s * 1000),
                    "max_open_ms": int(max_open_s * 1000),
                },
            )
        )
