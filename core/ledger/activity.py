"""What happened over a window of time (`ledger.activity`): the events each source sent and
what became of their deliveries. Plain reads, for the health report and the integration audit
(core/health.py, core/audit.py); bounded, in pipelined chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from core.ledger import deliveries, event_fields
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text

CHUNK = 1000
MAX_EVENTS = 200_000  # a window's events read at most (the newest)


@dataclass(frozen=True)
class DeliverySeen:
    mapping: str
    connection: str
    state: str
    created_at: float  # s: the event's receipt (the delivery was made with it)
    updated_at: float  # s: its last change (for a delivered one: the write)
    attempts: int


class ActivityReads:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    def source_activity(self, source: str, since: float) -> tuple[int, float | None]:
        """Events `source` sent since `since` (accepted or echoes), and its last one's time."""
        key = self.keys.source_events(source)
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcount(key, int(since * 1000), "+inf")
            pipe.zrevrange(key, 0, 0, withscores=True)
            count, last = pipe.execute()
        return int(count), (float(last[0][1]) / 1000 if last else None)

    def deliveries_since(self, since: float) -> Iterator[DeliverySeen]:
        """The deliveries of every event received since `since`, as they are now."""
        with translate_redis_errors():
            ids = [
                text(i)
                for i in cast(
                    list[bytes],
                    self.redis.zrevrangebyscore(
                        self.keys.events(), "+inf", int(since * 1000), start=0, num=MAX_EVENTS
                    ),
                )
            ]
        for start in range(0, len(ids), CHUNK):
            yield from self._deliveries_of(ids[start : start + CHUNK])

    def _deliveries_of(self, event_ids: Sequence[str]) -> Iterator[DeliverySeen]:
        lists = event_fields.read_delivery_ids(self.redis, self.keys, event_ids)
        delivery_ids = [d for listed in lists for d in listed]
        with translate_redis_errors():
            fields = ["mapping", "connection", "state", "created_at", "updated_at", "attempts"]
            rows = deliveries.read_fields(self.redis, self.keys, delivery_ids, fields)
        for mapping, connection, state, created, updated, attempts in rows:
            if mapping is None or state is None:
                continue
            yield DeliverySeen(
                mapping=text(mapping),
                connection=text(connection),
                state=text(state),
                created_at=float(created or 0) / 1000,
                updated_at=float(updated or created or 0) / 1000,
                attempts=int(attempts or 0),
            )
