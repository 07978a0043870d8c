"""The fake Dataverse's state behind one lock: the app's credentials and issued tokens, the
tables' rows, the request log, counters and faults.

Fault modes (``POST /_control/faults``): ``error5xx`` (``status``, default 500), ``latency``
(``latency_ms``), ``drop``, ``throttle`` (429 with ``Retry-After: retry_after``, default 1 s,
``limit``: requests | execution_time | concurrency picks the service protection code),
``throttle_no_retry_after`` (429 without the header, as behind a proxy that strips it),
``business_rule`` (writes refused 400 0x80040265 with ``message``, as a synchronous plug-in
would), and the immediate ``expire_tokens`` (every token issued so far stops working) and
``revoke_credentials`` (the client secret expires: AADSTS7000222 until ``POST
/_control/credentials`` installs one again)."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from connectors.fakes.app import Json
from connectors.fakes.dynamics.schema import EntitySet, Metadata
from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec
from connectors.fakes.state import StateBase, new_log

FAULT_MODES = (
    "error5xx",
    "latency",
    "drop",
    "throttle",
    "throttle_no_retry_after",
    "business_rule",
    "expire_tokens",
    "revoke_credentials",
)
IMMEDIATE_MODES = ("expire_tokens", "revoke_credentials")


@dataclass
class Config:
    tenant: str = "00000000-0000-0000-0000-0000000000aa"
    client_id: str = "fake-dynamics-client-id"
    client_secret: str = "fake-dynamics-client-secret"
    #: the environment's URL (the token scope is `{url}/.default`); the server sets its own
    url: str = "https://fake.crm.dynamics.com"
    #: Entra ID access tokens live about an hour (expires_in 3599)
    token_seconds: int = 3599


@dataclass
class Fault(FaultBase):
    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "mode",
        "count",
        "remaining",
        "seconds",
        "expires_in",
        "ratio",
        "seed",
        "status",
        "latency_ms",
        "retry_after",
        "limit",
        "methods",
        "message",
        "hits",
        "active",
    )

    retry_after: float = 1
    limit: str = "requests"

    def describe_extra(self) -> Json:
        return {"retry_after": self.retry_after, "limit": self.limit}


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "status", "latency_ms", "retry_after"),
        texts=("message", "limit"),
        lists=("methods", "objects"),
    )
    retry_after = options["retry_after"]
    return Fault(
        id=fault_id,
        **common_fault_args(options),
        retry_after=retry_after if retry_after is not None else 1,
        limit=options["limit"] or "requests",
    )


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class State(StateBase[Fault]):
    def __init__(self, config: Config, metadata: Metadata) -> None:
        super().__init__()
        # re-entrant: an operation under the lock also takes faults (which lock themselves)
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.initial = dataclasses.replace(config)
        self.config = config
        self.metadata = metadata
        self.tokens: dict[str, float] = {}  # access token -> expires at
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.rows: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in self.metadata.sets}
        # per entity set and alternate key: the key's values (without case) -> the row
        self.key_index: dict[tuple[str, str], dict[tuple[str, ...], str]] = {
            (s.name, k): {} for s in self.metadata.sets.values() for k in s.alternate_keys
        }
        self.secret_valid = True
        self.log = new_log()
        self.violations: list[Json] = []
        self.faults = []
        self.by_fault = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.api_calls = 0
        self.batch_requests = 0
        self.token_requests = 0
        self.token_errors: Counter[str] = Counter()
        self.created = 0
        self.updated = 0

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def immediate_faults(self) -> dict[str, Callable[[], Json]]:
        def revoke_secret() -> Json:
            self.secret_valid = False
            return {"revoked": 1}

        return {
            "expire_tokens": lambda: {"expired": self.emptied("tokens")},
            "revoke_credentials": revoke_secret,
        }

    # --- tokens -------------------------------------------------------------------------------

    def new_token(self) -> str:
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48)
        self.tokens[token] = time.time() + self.config.token_seconds
        return token

    def token_valid(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        with self.lock:
            expires = self.tokens.get(token.strip())
            return expires is not None and time.time() < expires

    # --- rows ---------------------------------------------------------------------------------

    def find_by(self, entity: EntitySet, columns: dict[str, Any]) -> str | None:
        """The row whose columns equal these values (without case, as Dataverse's collation
        compares alternate keys): through the key's index when they form one."""
        key = entity.key_for(list(columns))
        if key is not None:
            cols = entity.alternate_keys[key]
            return self.key_index[(entity.name, key)].get(
                tuple(str(columns[c]).strip().lower() for c in cols)
            )
        wanted = {c: str(v).strip().lower() for c, v in columns.items()}
        for row_id, row in self.rows[entity.name].items():
            if all(str(row.get(c) or "").strip().lower() == v for c, v in wanted.items()):
                return row_id
        return None

    def key_clash(self, entity: EntitySet, row: dict[str, Any], row_id: str | None) -> bool:
        """Whether these values would give another row's alternate key values (Dataverse
        refuses a duplicate key: 0x80040237)."""
        for key, cols in entity.alternate_keys.items():
            values = tuple(str(row.get(c) or "").strip().lower() for c in cols)
            if all(values):
                owner = self.key_index[(entity.name, key)].get(values)
                if owner is not None and owner != row_id:
                    return True
        return False

    def restore(self, entity: EntitySet, row_id: str, before: dict[str, Any] | None) -> None:
        """A row as it was before a rolled-back save (None: it did not exist)."""
        current = self.rows[entity.name].pop(row_id, None)
        if current is not None:
            for key, cols in entity.alternate_keys.items():
                values = tuple(str(current.get(c) or "").strip().lower() for c in cols)
                if self.key_index[(entity.name, key)].get(values) == row_id:
                    del self.key_index[(entity.name, key)][values]
        if before is None:
            self.created -= 1
            return
        self.rows[entity.name][row_id] = before
        self._index(entity, row_id, None)
        self.updated -= 1

    def _index(self, entity: EntitySet, row_id: str, before: dict[str, Any] | None) -> None:
        row = self.rows[entity.name][row_id]
        for key, cols in entity.alternate_keys.items():
            index = self.key_index[(entity.name, key)]
            if before is not None:
                old = tuple(str(before.get(c) or "").strip().lower() for c in cols)
                if index.get(old) == row_id:
                    del index[old]
            new = tuple(str(row.get(c) or "").strip().lower() for c in cols)
            if all(new):
                index[new] = row_id

    def insert(self, entity: EntitySet, values: dict[str, Any]) -> str:
        row_id = str(uuid.uuid4())
        now = _stamp()
        self.rows[entity.name][row_id] = {
            **{k: v for k, v in values.items() if v is not None},
            entity.key: row_id,
            "createdon": now,
            "modifiedon": now,
        }
        self._index(entity, row_id, None)
        self.created += 1
        return row_id

    def update(self, entity: EntitySet, row_id: str, values: dict[str, Any]) -> None:
        row = self.rows[entity.name][row_id]
        before = dict(row)
        for key, value in values.items():
            if value is None:
                row.pop(key, None)
            else:
                row[key] = value
        row["modifiedon"] = _stamp()
        self._index(entity, row_id, before)
        self.updated += 1

    # --- the log ------------------------------------------------------------------------------

    def record(
        self,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        body: Any,
        violation: str | None,
        error_codes: list[str],
    ) -> None:
        with self.lock:
            self.seq += 1
            self.by_endpoint[endpoint] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            for code in error_codes:
                self.by_error[code] += 1
            if endpoint == "token":
                self.token_requests += 1
            elif endpoint != "unknown":
                self.api_calls += 1
            entry = {
                "seq": self.seq,
                "time": time.time(),
                "method": method,
                "path": path,
                "endpoint": endpoint,
                "status": status,
                "body": body,
            }
            self.log.append(entry)
            if violation is not None:
                self.violations.append({**entry, "problem": violation})

    def stats(self) -> Json:
        with self.lock:
            return {
                "requests": sum(self.by_endpoint.values()),
                "api_calls": self.api_calls,
                "token_requests": self.token_requests,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
                "by_error": dict(self.by_error),
                "token_errors": dict(self.token_errors),
                "records": {name: len(rows) for name, rows in self.rows.items()},
                "created": self.created,
                "updated": self.updated,
                "violations": len(self.violations),
                "faults_applied": dict(self.by_fault),
                "last_seq": self.seq,
            }
