"""Bulk operations on dead letters (a replay or discard of thousands): what to do, the ids
chosen when it was asked for, and how far it got, all in the ledger, so whichever web process
(or host) runs it, and one that takes over after a restart, continue where it stopped.

The replay script counts each chunk's progress in the same atomic step as the chunk
(replay.lua, `op`), so a chunk is never counted without having been applied or the reverse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, iso_from_ms, text

IDEMPOTENCY_SECONDS = 24 * 3600
RUNNING = "running"
DONE = "done"


class BulkOperations:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    def create(
        self,
        op_id: str,
        *,
        items: Sequence[tuple[str, str]],
        fields: Mapping[str, Any],
        now: float,
        idempotency_key: str | None = None,
    ) -> tuple[str, bool]:
        """Record an operation over `items` ((delivery id, dead_at)); with an idempotency
        key already used, nothing is created and the first operation's id is returned.
        Returns (id, created)."""
        with translate_redis_errors():
            if idempotency_key:
                key = self.keys.idempotency(idempotency_key)
                if not self.redis.set(key, op_id, nx=True, ex=IDEMPOTENCY_SECONDS):
                    return text(self.redis.get(key) or op_id), False
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(
                self.keys.operation(op_id),
                mapping={
                    "id": op_id,
                    "state": RUNNING,
                    "total": len(items),
                    "done": 0,
                    "applied": 0,
                    "created_at": int(now * 1000),
                    "lease_until": 0,
                    **{
                        k: json.dumps(v) if not isinstance(v, str) else v for k, v in fields.items()
                    },
                },
            )
            for start in range(0, len(items), 1000):
                pipe.rpush(
                    self.keys.operation_ids(op_id),
                    *(f"{i}|{at}" for i, at in items[start : start + 1000]),
                )
            pipe.zadd(self.keys.operations(), {op_id: int(now * 1000)})
            pipe.execute()
        return op_id, True

    def get(self, op_id: str) -> dict[str, str]:
        with translate_redis_errors():
            return decode(self.redis.hgetall(self.keys.operation(op_id)))

    def chunk(self, op_id: str, start: int, size: int) -> list[tuple[str, str]]:
        with translate_redis_errors():
            raw = self.redis.lrange(self.keys.operation_ids(op_id), start, start + size - 1)
        return [tuple(text(r).split("|", 1)) for r in raw]  # type: ignore[misc]

    def take(self, op_id: str, owner: str, now: float, lease_seconds: float) -> bool:
        """Become (or stay) the operation's runner until the lease runs out: False while
        another runner's lease holds, or once it is done."""
        key = self.keys.operation(op_id)
        with translate_redis_errors(), self.redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                state, holder, until = pipe.hmget(key, ["state", "owner", "lease_until"])
                if state is None or text(state) != RUNNING:
                    return False
                if holder is not None and text(holder) != owner and float(until or 0) > now:
                    return False
                pipe.multi()
                pipe.hset(key, mapping={"owner": owner, "lease_until": now + lease_seconds})
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def finish(self, op_id: str, now: float) -> None:
        with translate_redis_errors():
            self.redis.hset(
                self.keys.operation(op_id),
                mapping={"state": DONE, "finished_at": int(now * 1000), "lease_until": 0},
            )

    def unfinished(self, now: float, limit: int = 100) -> list[str]:
        """Running operations nobody holds (their runner stopped): to be taken over."""
        with translate_redis_errors():
            recent = [text(i) for i in self.redis.zrevrange(self.keys.operations(), 0, limit - 1)]
            pipe = self.redis.pipeline(transaction=False)
            for op_id in recent:
                pipe.hmget(self.keys.operation(op_id), ["state", "lease_until"])
            states = pipe.execute()
        return [
            op_id
            for op_id, (state, until) in zip(recent, states, strict=True)
            if state is not None and text(state) == RUNNING and float(until or 0) <= now
        ]


def operation_view(raw: Mapping[str, str]) -> dict[str, Any]:
    def loaded(name: str) -> Any:
        value = raw.get(name)
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError:
            return value

    return {
        "id": raw["id"],
        "action": raw.get("action"),
        "state": raw.get("state"),
        "done": int(raw.get("done", 0)),
        "total": int(raw.get("total", 0)),
        "applied": int(raw.get("applied", 0)),
        "by": raw.get("by"),
        "via": raw.get("via"),
        "reason": raw.get("reason") or None,
        "filter": loaded("filter"),
        "created_at": iso_from_ms(raw.get("created_at")),
        "finished_at": iso_from_ms(raw.get("finished_at")),
    }
