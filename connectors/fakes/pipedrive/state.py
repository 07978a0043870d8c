"""The fake Pipedrive's state behind one lock: credentials (the API token, OAuth access and
refresh tokens), persons and organizations, the company's daily token budget and the burst
window, the request log, counters and faults."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.pipedrive.config import Config
from connectors.fakes.pipedrive.faults import Fault, parse_fault
from connectors.fakes.state import StateBase, new_log

OBJECTS = ("persons", "organizations")
BURST_WINDOW_SECONDS = 2.0


def stamp() -> str:
    """v2 timestamps are RFC 3339 (pipedrive-api-v2-migration-guide)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class State(StateBase[Fault]):
    def __init__(self, config: Config) -> None:
        super().__init__()
        # re-entrant: an operation under the lock also takes faults (which lock themselves)
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.initial = dataclasses.replace(config)
        self.config = config
        self.access_tokens: dict[str, float] = {}  # token -> expires at (kept across reset)
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.records: dict[str, dict[int, Json]] = {o: {} for o in OBJECTS}
        self.next_id = 1
        self.api_tokens = {self.config.api_token}
        self.refresh_tokens = {self.config.refresh_token}
        self.log = new_log()
        self.violations: list[Json] = []
        self.faults = []
        self.by_fault = Counter()
        self.by_operation: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.tokens_used = 0
        self.burst: deque[float] = deque()
        self.rate_limited = 0
        self.token_refreshes = 0
        self.token_errors: Counter[str] = Counter()
        self.created = 0
        self.updated = 0

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        return {
            "expire_tokens": lambda: {"expired": self.emptied("access_tokens")},
            "revoke_api_token": lambda: {"revoked": self.emptied("api_tokens")},
            "revoke_refresh_token": lambda: {"revoked": self.emptied("refresh_tokens")},
        }

    # --- credentials --------------------------------------------------------------------------

    def new_access_token(self) -> str:
        token = f"v1:{secrets.token_urlsafe(48)}"
        self.access_tokens[token] = time.time() + self.config.token_seconds
        return token

    def authorised(self, req: Request) -> str | None:
        """How the request authenticated ("api_token" / "oauth2"), or None."""
        api_token = req.headers.get("x-api-token") or req.param("api_token")
        with self.lock:
            if api_token:
                return "api_token" if api_token in self.api_tokens else None
            scheme, _, token = req.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            expires = self.access_tokens.get(token.strip())
            return "oauth2" if expires is not None and time.time() < expires else None

    # --- the budget ---------------------------------------------------------------------------

    def spend(self, cost: int, now: float) -> str | None:
        """Charge a request to the daily budget and the burst window: None, or which limit
        refused it ("daily" / "burst")."""
        burst = self.config.burst_limit
        while self.burst and self.burst[0] <= now - BURST_WINDOW_SECONDS:
            self.burst.popleft()
        if self.tokens_used + cost > self.config.daily_tokens:
            return "daily"
        if burst and len(self.burst) >= burst:
            return "burst"
        self.tokens_used += cost
        self.burst.append(now)
        return None

    def budget_headers(self, now: float) -> dict[str, str]:
        """On every API answer (core-api-concepts-rate-limiting): the burst window's
        x-ratelimit-*, and the daily token budget's x-daily-ratelimit-token-* [observed]."""
        burst = self.config.burst_limit or 10_000
        reset = BURST_WINDOW_SECONDS - (now - self.burst[0]) if self.burst else BURST_WINDOW_SECONDS
        left = max(self.config.daily_tokens - self.tokens_used, 0)
        return {
            "x-ratelimit-limit": str(burst),
            "x-ratelimit-remaining": str(max(burst - len(self.burst), 0)),
            "x-ratelimit-reset": str(max(int(reset + 0.999), 1)),
            "x-daily-ratelimit-token-limit": str(self.config.daily_tokens),
            "x-daily-ratelimit-token-remaining": str(left),
        }

    # --- records ------------------------------------------------------------------------------

    def new_id(self) -> int:
        record_id = self.next_id
        self.next_id += 1
        return record_id

    # --- the log ------------------------------------------------------------------------------

    def record(
        self, req: Request, operation: str, response: Response, body: Any, violation: str | None
    ) -> None:
        with self.lock:
            self.seq += 1
            status = None if response.drop else response.status
            self.by_operation[operation] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            entry = {
                "seq": self.seq,
                "time": time.time(),
                "method": req.method,
                "path": req.path,
                "query": {k: v if len(v) > 1 else v[0] for k, v in req.query.items()},
                "operation": operation,
                "status": status,
                "body": body,
            }
            self.log.append(entry)
            if violation is not None:
                self.violations.append({**entry, "problem": violation})

    def stats(self) -> Json:
        with self.lock:
            api_calls = sum(n for op, n in self.by_operation.items() if op != "oauth.token")
            return {
                "requests": sum(self.by_operation.values()),
                "api_calls": api_calls,
                "by_operation": dict(self.by_operation),
                "by_status": dict(self.by_status),
                "tokens_used": self.tokens_used,
                "daily_tokens": self.config.daily_tokens,
                "rate_limited": self.rate_limited,
                "token_refreshes": self.token_refreshes,
                "token_errors": dict(self.token_errors),
                "records": {name: len(table) for name, table in self.records.items()},
                "created": self.created,
                "updated": self.updated,
                "violations": len(self.violations),
                "faults_applied": dict(self.by_fault),
                "last_seq": self.seq,
            }
