"""What connectors and the delivery worker remember between deliveries, in the ledger's Redis
(`ledger.memo`), shared by every worker process and host:

- fetched records: one read of a source record serves its other events of a short window
  (a burst of propertyChange webhooks costs one fetch);
- related records' ids by their normalised key, and a lock per key so concurrent deliveries
  find-or-create one related record, never two;
- the daily-limit probe backoff of a connection (REQUEST_LIMIT_EXCEEDED refusals in a row);
- the target's own API usage report, for /metrics.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis
from redis.lock import Lock

from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors

#: how long a related record's id is trusted without asking the target again
RELATED_TTL_SECONDS = 3600
_MAX_PART = 120


def _part(text: str) -> str:
    """A key part: as is, or hashed when long (company names can be)."""
    if len(text) <= _MAX_PART:
        return text
    return "sha256=" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Memo:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    # fetched records ------------------------------------------------------------------
    def fetched(self, connection: str, obj: str, record_id: str) -> tuple[int, Any] | None:
        """(when it was read, ms; the record) or None."""
        with translate_redis_errors():
            raw = self.redis.get(self.keys.fetched(connection, obj, _part(record_id)))
        if not raw:
            return None
        data = json.loads(raw)
        return int(data["at_ms"]), data["record"]

    def remember_fetch(
        self, connection: str, obj: str, record_id: str, record: Any, at: float, window: float
    ) -> None:
        if window <= 0:
            return
        payload = json.dumps({"at_ms": int(at * 1000), "record": record})
        with translate_redis_errors():
            self.redis.set(
                self.keys.fetched(connection, obj, _part(record_id)),
                payload,
                px=max(1, int(window * 1000)),
            )

    # related records ------------------------------------------------------------------
    def related_ids(self, connection: str, obj: str, keys: list[str]) -> dict[str, str]:
        """The known ids of related records by normalised key (unknown ones left out)."""
        if not keys:
            return {}
        with translate_redis_errors():
            found = self.redis.mget([self.keys.related(connection, obj, _part(k)) for k in keys])
        return {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in zip(keys, found, strict=True)
            if v
        }

    def remember_related(self, connection: str, obj: str, ids: dict[str, str]) -> None:
        if not ids:
            return
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for key, record_id in ids.items():
                pipe.set(
                    self.keys.related(connection, obj, _part(key)),
                    record_id,
                    ex=RELATED_TTL_SECONDS,
                )
            pipe.execute()

    def forget_related(self, connection: str, obj: str, key: str) -> None:
        with translate_redis_errors():
            self.redis.delete(self.keys.related(connection, obj, _part(key)))

    def related_lock(self, connection: str, obj: str, key: str) -> Lock:
        """Held while one delivery finds or creates the related record of `key`: a second
        delivery of the same key waits, then finds the first one's record."""
        return self.redis.lock(
            self.keys.related_lock(connection, obj, _part(key)), timeout=60, blocking_timeout=30
        )

    # the target's daily limit ---------------------------------------------------------
    def limit_refused(self, connection: str, first: float, cap: float) -> float:
        """One more daily-limit refusal: the wait before the next probe (first, doubling on
        each refusal in a row, at most cap)."""
        key = self.keys.limit_probe(connection)
        with translate_redis_errors():
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, int(cap * 2 + 60))
            count = int(pipe.execute()[0])
        return float(min(cap, first * 2 ** min(count - 1, 32)))

    def limit_passed(self, connection: str) -> None:
        with translate_redis_errors():
            self.redis.delete(
                self.keys.limit_probe(connection), self.keys.limit_probe_flight(connection)
            )

    def limited(self, connection: str) -> bool:
        """Whether the target's daily limit refused the last request (no probe passed since)."""
        with translate_redis_errors():
            return bool(self.redis.exists(self.keys.limit_probe(connection)))

    def take_probe(self, connection: str, seconds: float) -> bool:
        """Become the one request that probes the daily limit (for at most `seconds`)."""
        with translate_redis_errors():
            return bool(
                self.redis.set(
                    self.keys.limit_probe_flight(connection), "1", nx=True, px=int(seconds * 1000)
                )
            )

    def probe_done(self, connection: str) -> None:
        with translate_redis_errors():
            self.redis.delete(self.keys.limit_probe_flight(connection))

    def record_usage(self, connection: str, used: int, limit: int) -> None:
        with translate_redis_errors():
            self.redis.hset(
                self.keys.api_usage(connection),
                mapping={"used": used, "limit": limit, "at": time.time()},
            )

    def usage(self, connection: str) -> dict[str, float]:
        with translate_redis_errors():
            raw = self.redis.hgetall(self.keys.api_usage(connection))
        return {(k.decode() if isinstance(k, bytes) else str(k)): float(v) for k, v in raw.items()}
