"""The fake HubSpot's whole state behind one lock: tokens, rate windows and records (each in
its own module), plus the request log, the contract violations, counters and faults."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.hubspot.auth import Tokens
from connectors.fakes.hubspot.config import Config
from connectors.fakes.hubspot.faults import Fault, parse_fault
from connectors.fakes.hubspot.limits import RateLimits
from connectors.fakes.hubspot.properties import ObjectType
from connectors.fakes.hubspot.records import Records
from connectors.fakes.hubspot.schemas import SchemaBook
from connectors.fakes.state import new_log

VIOLATION_LIMIT = 10_000


@dataclass
class Outcome:
    """What answering one API request produced, for the answer and the log."""

    response: Response
    endpoint: str
    obj: str | None
    body: Any = None
    fault: str | None = None
    auth: str | None = None
    problems: list[Json] | None = None  # not None: a contract violation


class State(Tokens, RateLimits, Records):
    """Records, tokens, rate windows, the log, counters, faults and violations, behind one lock."""

    violations: deque[Json]
    violation_count: int
    requests: int
    by_endpoint: Counter[str]
    by_status: Counter[str]

    def __init__(self, config: Config, book: SchemaBook, types: dict[str, ObjectType]) -> None:
        super().__init__()
        self.initial = dataclasses.replace(config)  # what /_control/reset goes back to
        self.config = config
        self.book = book
        self.types = types
        self.next_id = 1001
        self.access_tokens = {}
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.clear_records()
        self.clear_tokens()
        self.clear_limits()
        self.log = new_log()
        self.violations = deque(maxlen=VIOLATION_LIMIT)
        self.violation_count = 0
        self.faults = []
        self.requests = 0
        self.by_endpoint = Counter()
        self.by_status = Counter()
        self.by_fault = Counter()

    # --- faults -------------------------------------------------------------------------------

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def take_fault(
        self, method: str, endpoint: str, obj: str | None, modes: tuple[str, ...]
    ) -> Fault | None:
        return self.first_fault(
            lambda fault: fault.mode in modes and fault.matches(method, endpoint, obj)
        )

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        return {
            "expire_tokens": lambda: {"expired": self.expire_access_tokens()},
            "revoke_refresh_token": lambda: {"revoked": self.emptied("refresh_tokens")},
        }

    # --- logging ------------------------------------------------------------------------------

    def record(self, req: Request, out: Outcome) -> None:
        response, problems = out.response, out.problems
        with self.lock:
            self.seq += 1
            self.requests += 1
            status = None if response.drop else response.status
            self.by_endpoint[out.endpoint] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            entry = {
                "seq": self.seq,
                "time": time.time(),
                "method": req.method,
                "path": req.path,
                "query": {k: v if len(v) > 1 else v[0] for k, v in req.query.items()},
                "endpoint": out.endpoint,
                "object": out.obj,
                "status": status,
                "body": out.body,
                "fault": out.fault,
                "auth": out.auth,
            }
            self.log.append(entry)
            if problems is not None:
                self.violation_count += 1
                message = (
                    response.payload.get("message") if isinstance(response.payload, dict) else None
                )
                self.violations.append(
                    {
                        "seq": self.seq,
                        "time": entry["time"],
                        "method": req.method,
                        "path": req.path,
                        "endpoint": out.endpoint,
                        "status": status,
                        "message": message,
                        "problems": problems,
                        "body": out.body,
                    }
                )

    # --- control reads ------------------------------------------------------------------------

    def stats(self) -> Json:
        with self.lock:
            now = time.monotonic()
            return {
                "requests": self.requests,
                "api_calls": self.api_calls,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
                "token_refreshes": self.token_refreshes,
                "token_errors": dict(self.token_errors),
                "rate_limited": dict(self.rate_limited),
                "records": {name: len(table) for name, table in self.records.items()},
                "created": self.created,
                "updated": self.updated,
                "violations": self.violation_count,
                "faults_applied": dict(self.by_fault),
                "faults_active": self.active_faults(now),
                "daily_used": self.daily_used,
                "log_entries": len(self.log),
                "last_seq": self.seq,
            }

    def violation_list(self) -> Json:
        with self.lock:
            return {"violations": list(self.violations), "count": self.violation_count}
