"""The configuration generation in the ledger's Redis (`ledger.generations`): the number
`crmhub reload` announces and every process compares with the one it loaded, and the refusals
of processes that could not load one (core/reload.py says why a number in Redis)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text

#: refusals are kept this long for `crmhub reload` to report
REFUSAL_TTL_SECONDS = 7 * 24 * 3600


class ConfigGenerations:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    def current(self) -> int:
        """The announced generation; 0 if none yet, or if Redis cannot say right now (the
        process then loads the file once more when it can, which is harmless)."""
        try:
            return int(self.redis.get(self.keys.config_generation()) or 0)
        except (redis.RedisError, ValueError):
            return 0

    def announce(self) -> int:
        """The next generation, announced. Raises LedgerUnavailable when Redis cannot take
        it."""
        with translate_redis_errors():
            return int(self.redis.incr(self.keys.config_generation()))

    def refuse(self, process: str, generation: int, problems: list[str]) -> None:
        """Note that `process` could not load `generation` (raises redis errors as they are:
        the caller only logs them)."""
        entry = {"generation": generation, "at": time.time(), "problems": problems}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.config_refusals(), process, json.dumps(entry))
        pipe.expire(self.keys.config_refusals(), REFUSAL_TTL_SECONDS)
        pipe.execute()

    def refusals(self, generation: int) -> list[dict[str, Any]]:
        """The processes that could not load `generation`: [{process, problems}]."""
        with translate_redis_errors():
            raw = self.redis.hgetall(self.keys.config_refusals())
        out = []
        for process, value in sorted(raw.items()):
            entry = json.loads(value)
            if entry.get("generation") == generation:
                out.append({"process": text(process), "problems": entry.get("problems", [])})
        return out
