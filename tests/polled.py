"""A hub's polling processes as a test drives them (tests/integration/test_polling*_e2e.py):
its parts started, SIGKILLed and stopped, and what the ledger holds of one polling source (its
cursor, its events' bodies as received), read from the real Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from processes import Part

from core.ledger.views import decode


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PolledHub:
    def __init__(self, env: dict[str, str], cwd: Path, source: str) -> None:
        self.env, self.cwd, self.source = env, cwd, source
        self.redis = redis.Redis.from_url(env["CRMHUB_REDIS_URL"])
        self.prefix = env["CRMHUB_KEY_PREFIX"]
        self.parts: dict[str, Part] = {}

    def start(self, names: tuple[str, ...] = ("worker", "beat")) -> None:
        self.parts |= {name: Part(name, self.env, self.cwd) for name in names}

    def kill(self, names: tuple[str, ...] = ("worker", "beat")) -> None:
        """SIGKILL the poller (a host losing power): its source's lock stays until it lapses."""
        for name in names:
            self.parts[name].kill()

    def stop(self) -> None:
        for part in self.parts.values():
            part.stop()

    def cursor(self) -> dict[str, str]:
        raw = self.redis.hgetall(f"{self.prefix}:poll:{self.source}")
        return {_text(k): _text(v) for k, v in raw.items()}

    def bodies(self) -> list[dict[str, Any]]:
        ids = self.redis.zrange(f"{self.prefix}:events:src:{self.source}", 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.hgetall(f"{self.prefix}:evt:{_text(event_id)}")
        # decode: the body as received, however the ledger holds it (compressed or not)
        return [json.loads(decode(raw)["body"]) for raw in pipe.execute()]

    def recorded(self) -> int:
        return int(self.redis.zcard(f"{self.prefix}:events:src:{self.source}"))

    def output(self) -> str:
        return "\n".join(f"--- {n}\n{p.output()[-3000:]}" for n, p in self.parts.items())
