"""The fake Salesforce's state behind one lock: sessions and refresh tokens, records, the
org's daily API budget, the request log, counters and faults."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.salesforce.config import Config
from connectors.fakes.salesforce.describe import Schemas, SObject
from connectors.fakes.salesforce.faults import Fault, parse_fault
from connectors.fakes.state import StateBase, new_log

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _stamp() -> str:
    # responses use 2013-05-20T20:49:32.000+0000 (headers_api_usage example)
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


class State(StateBase[Fault]):
    def __init__(self, config: Config, schemas: Schemas) -> None:
        super().__init__()
        # re-entrant: an operation under the lock also takes faults (which lock themselves)
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.initial = dataclasses.replace(config)
        self.config = config
        self.schemas = schemas
        self.sessions: dict[str, float] = {}  # access token -> expires at (kept across reset)
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            o.name: {} for o in self.schemas.objects.values()
        }
        # per duplicate rule: the matching key of each record -> the records with it (so a
        # save checks the rule without scanning every record)
        self.dup_index: dict[str, dict[tuple[str, ...], set[str]]] = {
            rule["name"]: {} for rule in self.schemas.duplicate_rules
        }
        self.next_id = 1
        self.refresh_tokens = {self.config.refresh_token}
        self.log = new_log()
        self.violations: list[Json] = []
        self.faults = []
        self.by_fault = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.api_used = 0
        self.token_refreshes = 0
        self.token_errors: Counter[str] = Counter()
        self.created = 0
        self.updated = 0
        # open query cursors (queryMore): locator -> the rows still to answer, as shown
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.cursors_batch: dict[str, int] = {}
        self.next_locator = 1

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        return {
            "expire_sessions": lambda: {"expired": self.emptied("sessions")},
            "revoke_refresh_token": lambda: {"revoked": self.emptied("refresh_tokens")},
        }

    # --- sessions -----------------------------------------------------------------------------

    def new_session(self) -> str:
        token = f"{self.config.org_id[:15]}!{secrets.token_urlsafe(60)}"
        self.sessions[token] = time.time() + self.config.session_seconds
        return token

    def session_valid(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return False
        with self.lock:
            expires = self.sessions.get(token.strip())
            return expires is not None and time.time() < expires

    # --- records ------------------------------------------------------------------------------

    def new_id(self, sobject: SObject) -> str:
        n, digits = self.next_id, ""
        self.next_id += 1
        for _ in range(9):
            n, r = divmod(n, 62)
            digits = _BASE62[r] + digits
        return f"{sobject.key_prefix}5g0{digits}AAA"  # 18 characters

    def insert(self, sobject: SObject, values: dict[str, Any]) -> str:
        record_id = self.new_id(sobject)
        now = _stamp()
        self.records[sobject.name][record_id] = {
            **{k: v for k, v in values.items() if v is not None},
            "Id": record_id,
            "CreatedDate": now,
            "LastModifiedDate": now,
            # what a listing (a polling source) orders and filters on: set by every save
            "SystemModstamp": now,
        }
        self._index(sobject, record_id, None)
        self.created += 1
        return record_id

    def update(self, sobject: SObject, record_id: str, values: dict[str, Any]) -> None:
        record = self.records[sobject.name][record_id]
        before = dict(record)
        for key, value in values.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        record["LastModifiedDate"] = record["SystemModstamp"] = _stamp()
        self._index(sobject, record_id, before)
        self.updated += 1

    def _rule_key(self, rule: Json, record: dict[str, Any]) -> tuple[str, ...] | None:
        key = tuple(str(record.get(f) or "").strip().lower() for f in rule["fields"])
        return key if all(key) else None

    def _index(self, sobject: SObject, record_id: str, before: dict[str, Any] | None) -> None:
        record = self.records[sobject.name][record_id]
        for rule in self.schemas.duplicate_rules:
            if rule["object"] != sobject.name:
                continue
            index = self.dup_index[rule["name"]]
            old = self._rule_key(rule, before) if before is not None else None
            if old is not None:
                index.get(old, set()).discard(record_id)
            new = self._rule_key(rule, record)
            if new is not None:
                index.setdefault(new, set()).add(record_id)

    def find(self, sobject: SObject, field: str, value: Any) -> list[str]:
        wanted = str(value).lower()
        return [
            rid
            for rid, rec in self.records[sobject.name].items()
            if rec.get(field) is not None and str(rec[field]).lower() == wanted
        ]

    def duplicates_of(
        self, sobject: SObject, values: dict[str, Any], record_id: str | None
    ) -> tuple[Json, list[str]] | None:
        """The active duplicate rule the values break, and the records they match."""
        for rule in self.schemas.duplicate_rules:
            if rule["object"] != sobject.name:
                continue
            current = dict(self.records[sobject.name].get(record_id or "", {}))
            current.update(values)
            key = self._rule_key(rule, current)
            if key is None:
                continue
            found = sorted(self.dup_index[rule["name"]].get(key, set()) - {record_id or ""})
            if found:
                return rule, found
        return None

    # --- the log ------------------------------------------------------------------------------

    def record(
        self, req: Request, endpoint: str, response: Response, body: Any, violation: str | None
    ) -> None:
        with self.lock:
            self.seq += 1
            status = None if response.drop else response.status
            self.by_endpoint[endpoint] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            if isinstance(response.payload, list):
                for item in response.payload:
                    if isinstance(item, dict) and item.get("errorCode"):
                        self.by_error[item["errorCode"]] += 1
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
            if violation is not None:
                self.violations.append({**entry, "problem": violation})

    def stats(self) -> Json:
        with self.lock:
            api_calls = sum(n for e, n in self.by_endpoint.items() if e != "oauth.token")
            return {
                "requests": sum(self.by_endpoint.values()),
                "api_calls": api_calls,
                "api_used": self.api_used,
                "daily_limit": self.config.daily_limit,
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
