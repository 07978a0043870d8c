"""The fake Zoho's state behind one lock: access and refresh tokens, records per module, the
org's API credits, the request log, violations, counters and faults."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.state import StateBase, new_log
from connectors.fakes.zoho.config import Config
from connectors.fakes.zoho.faults import Fault, parse_fault
from connectors.fakes.zoho.layout import MODULES, Module

#: record ids look like Zoho's (19 digits, the org's prefix then a sequence)
ID_BASE = 5725767000000500001


def stamp() -> str:
    # Zoho answers datetimes in ISO 8601 with an offset: 2023-05-10T01:10:47-07:00
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def key_of(value: Any) -> str:
    """Zoho's duplicate check and search compare without case [unconfirmed for search]."""
    return str(value if value is not None else "").strip().lower()


class State(StateBase[Fault]):
    def __init__(self, config: Config) -> None:
        super().__init__()
        # re-entrant: an operation under the lock also takes faults (which lock themselves)
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.initial = dataclasses.replace(config)
        self.config = config
        self.tokens: dict[str, float] = {}  # access token -> expires at (kept across reset)
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.records: dict[str, dict[str, Json]] = {name: {} for name in MODULES}
        self.next_id = ID_BASE
        self.refresh_tokens = {self.config.refresh_token}
        self.minted: deque[float] = deque()
        self.log = new_log()
        self.violations: list[Json] = []
        self.faults = []
        self.by_fault = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.credits_used = 0
        self.records_sent = 0
        self.token_refreshes = 0
        self.token_errors: Counter[str] = Counter()
        self.created = 0
        self.updated = 0

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        return {
            "expire_tokens": lambda: {"expired": self.emptied("tokens")},
            "revoke_refresh_token": lambda: {"revoked": self.emptied("refresh_tokens")},
        }

    # --- tokens -------------------------------------------------------------------------------

    def new_token(self) -> str:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.tokens[token] = time.time() + self.config.token_seconds
        return token

    def throttled(self, now: float) -> bool:
        """Zoho lets a refresh token mint 10 access tokens per 10 minutes."""
        limit = self.config.tokens_per_ten_minutes
        while self.minted and self.minted[0] < now - 600:
            self.minted.popleft()
        return bool(limit) and len(self.minted) >= limit

    def token_valid(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "Zoho-oauthtoken" or not token:
            return False
        with self.lock:
            expires = self.tokens.get(token.strip())
            return expires is not None and time.time() < expires

    # --- records ------------------------------------------------------------------------------

    def user(self) -> Json:
        return {"name": self.config.user_name, "id": self.config.user_id}

    def insert(self, module: Module, values: Json) -> Json:
        record_id = str(self.next_id)
        self.next_id += 1
        now = stamp()
        record = {
            **{k: v for k, v in values.items() if v is not None},
            "id": record_id,
            "Owner": {**self.user(), "email": "patricia.boyle@zylker.com"},
            "Created_Time": now,
            "Modified_Time": now,
            "Created_By": self.user(),
            "Modified_By": self.user(),
        }
        self.records[module.name][record_id] = record
        self.created += 1
        return record

    def update(self, module: Module, record_id: str, values: Json) -> Json:
        record = self.records[module.name][record_id]
        for key, value in values.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        record["Modified_Time"] = stamp()
        record["Modified_By"] = self.user()
        self.updated += 1
        return record

    def find(self, module: Module, field: str, value: Any) -> list[str]:
        """The ids whose `field` equals `value` (without case), oldest first."""
        wanted = key_of(value)
        return [
            rid
            for rid, rec in self.records[module.name].items()
            if rec.get(field) is not None and key_of(rec[field]) == wanted
        ]

    def shown(self, module: Module, record: Json) -> Json:
        """A record as Zoho answers it: lookups with the related record's name."""
        out = dict(record)
        for field in module.fields.values():
            value = out.get(field.name)
            if field.type == "lookup" and isinstance(value, dict) and field.lookup:
                related = self.records[field.lookup].get(str(value.get("id")), {})
                unique = MODULES[field.lookup].unique
                out[field.name] = {"name": related.get(unique), "id": value.get("id")}
        return out

    # --- the log ------------------------------------------------------------------------------

    def record(
        self,
        req: Request,
        endpoint: str,
        response: Response,
        body: Any,
        violations: list[str],
        credits: int,
    ) -> None:
        with self.lock:
            self.seq += 1
            status = None if response.drop else response.status
            self.by_endpoint[endpoint] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            self.credits_used += credits
            payload = response.payload
            codes = [payload.get("code")] if isinstance(payload, dict) else []
            if isinstance(payload, dict) and isinstance(payload.get("data"), list):
                codes += [d.get("code") for d in payload["data"] if d.get("status") == "error"]
            if isinstance(payload, dict) and payload.get("error"):
                codes.append(payload["error"])
            for code in codes:
                if code:
                    self.by_error[str(code)] += 1
            entry = {
                "seq": self.seq,
                "time": time.time(),
                "method": req.method,
                "path": req.path,
                "query": {k: v if len(v) > 1 else v[0] for k, v in req.query.items()},
                "endpoint": endpoint,
                "status": status,
                "body": body,
            }
            self.log.append(entry)
            for problem in violations:
                self.violations.append({**entry, "problem": problem})

    def stats(self) -> Json:
        with self.lock:
            api_calls = sum(n for e, n in self.by_endpoint.items() if e != "oauth.token")
            return {
                "requests": sum(self.by_endpoint.values()),
                "api_calls": api_calls,
                "credits_used": self.credits_used,
                "credits": self.config.credits,
                "records_sent": self.records_sent,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
                "by_error": dict(self.by_error),
                "token_refreshes": self.token_refreshes,
                "token_errors": dict(self.token_errors),
                "records": {name: len(table) for name, table in self.records.items()},
                "created": self.created,
                "updated": self.updated,
                "violations": len(self.violations),
                "faults_applied": dict(self.by_fault),
                "last_seq": self.seq,
            }
