"""Hot and cold, the ledger's side: what leaves Redis for the archive, and how.

An event is done for good once every delivery of it is delivered, superseded or discarded (or
it had none: unrouted, echo); the scripts that make those changes put it in the terminal index
(`idx:terminal`, by when). The archiver (core/archive/mover.py) reads the oldest of them in
bounded batches (`terminal_batch`), writes them to the archive, and only then removes them
here (`evict`, evict.lua), which re-checks each is still done for good and unchanged: a crash
between the two leaves an event in both places (the next pass writes it again, idempotently,
and removes it), never in neither. Also here: the erasure of a person's events (`purge`; it
is recorded in the operator action log, core/ledger/actions.py), and the figures /metrics
reports (Redis memory, archive lag).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from core.ledger import event_fields
from core.ledger.bodies import BODY
from core.ledger.deliveries import read_hashes
from core.ledger.keys import LedgerKeys
from core.ledger.search import search_terms, term_digest
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, text


@dataclass(frozen=True)
class DoneDelivery:
    """A delivery of a done event, as read for the archive."""

    fields: dict[str, str]  # its hash
    attempts: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DoneEvent:
    """An event done for good, as read for the archive: what is written there, and what
    evict.lua re-checks before it removes it here."""

    fields: dict[str, str]  # its hash
    done_ms: int  # its terminal index score: when it became done
    deliveries: tuple[DoneDelivery, ...]

    @property
    def id(self) -> str:
        return self.fields["id"]

    def evict_request(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "since": self.done_ms,
            **index_entries_of(self.fields),
            "deliveries": [
                {"id": d.fields["id"], "updated": d.fields.get("updated_at", "")}
                for d in self.deliveries
            ],
        }


def terms_of(fields: dict[str, str]) -> list[str]:
    """An event's search index terms, found again from its hash as accept found them
    (core/ledger/search.py), so they leave the index with it without being stored on it."""
    if fields.get("edit_of"):  # an edited copy was never indexed
        return []
    return search_terms(fields.get("external_id", ""), fields.get(BODY, ""))


def index_entries_of(fields: dict[str, str]) -> dict[str, list[str]]:
    """What evict.lua and purge.lua remove an event's search entries by: its terms (for
    entries written before, which spell them) and their digests (common.lua search_entry)."""
    terms = terms_of(fields)
    return {"terms": terms, "digests": [term_digest(t) for t in terms]}


class ArchiveLock:
    """One archiver at a time (across hosts), for at most `ttl` seconds unless renewed: one
    that dies (SIGKILL, a lost host) blocks the others no longer than that. Only saves work:
    two archivers at once would still neither lose nor duplicate for good (evict.lua)."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def renew(self) -> bool:
        with translate_redis_errors(), contextlib.suppress(redis.exceptions.LockError):
            return bool(self._lock.reacquire())
        return False


class LedgerCold:
    """The ledger's side of hot and cold storage (a base of core.ledger.Ledger)."""

    redis: redis.Redis
    keys: LedgerKeys

    _run: Callable[..., Any]  # runs a script (core.ledger.store.Ledger)

    # the move -------------------------------------------------------------------------
    @contextlib.contextmanager
    def archive_lock(self, ttl_seconds: float) -> Iterator[ArchiveLock | None]:
        """Yields the lock when this caller holds it, else None."""
        lock = self.redis.lock(self.keys.archive_lock(), timeout=ttl_seconds, blocking=False)
        with translate_redis_errors():
            held = bool(lock.acquire())
        try:
            yield ArchiveLock(lock) if held else None
        finally:
            if held:
                with contextlib.suppress(redis.exceptions.LockError, redis.RedisError):
                    lock.release()

    def terminal_batch(self, done_before: float, limit: int) -> list[DoneEvent]:
        """Up to `limit` of the events that became done for good before `done_before`
        (epoch s), oldest first, each whole: hash, deliveries, their attempts and actions."""
        with translate_redis_errors():
            scored: list[tuple[bytes, float]] = self.redis.zrangebyscore(  # type: ignore[assignment]
                self.keys.terminal_index(),
                "-inf",
                f"({int(done_before * 1000)}",
                start=0,
                num=limit,
                withscores=True,
            )
            if not scored:
                return []
            pipe = self.redis.pipeline(transaction=False)
            for event_id, _ in scored:
                pipe.hgetall(self.keys.event(text(event_id)))
            events = [
                event_fields.complete(text(event_id), decode(raw))
                for (event_id, _), raw in zip(scored, pipe.execute(), strict=True)
            ]
            delivery_ids = [
                event_fields.delivery_ids(ev["deliveries"]) if ev else [] for ev in events
            ]
            flat = [delivery_id for ids in delivery_ids for delivery_id in ids]
            hashes = iter(read_hashes(self.redis, self.keys, flat))
            for delivery_id in flat:
                pipe.lrange(self.keys.attempts(delivery_id), 0, -1)
                pipe.lrange(self.keys.actions(delivery_id), 0, -1)
            replies = iter(pipe.execute())
        batch, gone = [], []
        for (event_id, score), ev, ids in zip(scored, events, delivery_ids, strict=True):
            deliveries = tuple(
                DoneDelivery(
                    next(hashes),
                    [json.loads(a) for a in next(replies)],
                    [json.loads(a) for a in next(replies)],
                )
                for _ in ids
            )
            if ev:
                batch.append(DoneEvent(ev, int(score), deliveries))
            else:
                gone.append(text(event_id))
        if gone:  # erased meanwhile: nothing to move, and the entry would come back every pass
            with translate_redis_errors():
                self.redis.zrem(self.keys.terminal_index(), *gone)
        return batch

    def evict(self, events: Sequence[DoneEvent], now: float) -> int:
        """Remove archived events from Redis, each only if unchanged since it was read;
        returns how many left."""
        if not events:
            return 0
        replies = self._run("evict", now, events=[ev.evict_request() for ev in events])
        return sum(int(r) for r in replies)

    # erasure --------------------------------------------------------------------------
    def purge(self, event_ids: Sequence[str], now: float) -> dict[str, str]:
        """Erase events (with their deliveries) from Redis: per id 'ok', 'missing', or the
        state of a delivery still on its way (then it is kept)."""
        if not event_ids:
            return {}
        found = self.event_fields(event_ids, ("external_id", "edit_of", BODY))
        replies = self._run(
            "purge",
            now,
            events=[
                {"id": i, **index_entries_of(fields)}
                for i, fields in zip(event_ids, found, strict=True)
            ],
        )
        return {i: text(r) for i, r in zip(event_ids, replies, strict=True)}

    # the hot side of event searches ---------------------------------------------------
    def event_ids_between(
        self,
        source: str | None,
        since: float | None,
        until: float | None,
        offset: int,
        count: int,
    ) -> list[tuple[str, int]]:
        """Hot event ids received in [since, until] (epoch s), newest first: `count` after
        the first `offset`, with their received_at (ms)."""
        key = self.keys.source_events(source) if source else self.keys.events()
        with translate_redis_errors():
            found: list[tuple[bytes, float]] = self.redis.zrevrangebyscore(  # type: ignore[assignment]
                key,
                int(until * 1000) if until is not None else "+inf",
                int(since * 1000) if since is not None else "-inf",
                start=offset,
                num=count,
                withscores=True,
            )
        return [(text(i), int(score)) for i, score in found]

    def event_fields(self, ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, str]]:
        """Some fields of several events in one round trip ({} for one that is gone); `body`
        is the text as received, however it is stored (core/ledger/bodies.py)."""
        return event_fields.read(self.redis, self.keys, ids, fields)

    # figures --------------------------------------------------------------------------
    def oldest_done_at(self) -> float | None:
        """When the oldest event still in Redis became done for good (epoch s), if any."""
        with translate_redis_errors():
            first = self.redis.zrange(self.keys.terminal_index(), 0, 0, withscores=True)
        return float(first[0][1]) / 1000 if first else None

    def done_count(self) -> int:
        """Events done for good still in Redis (archived once their retention passed)."""
        with translate_redis_errors():
            return int(self.redis.zcard(self.keys.terminal_index()))

    def memory(self) -> dict[str, int]:
        """Redis's used memory and its limit (maxmemory; 0: none set), in bytes."""
        with translate_redis_errors():
            info = self.redis.info("memory")
        return {"used": int(info["used_memory"]), "limit": int(info.get("maxmemory", 0))}
