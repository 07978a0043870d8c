"""The fake Salesforce's fault modes: 5xx, latency and drops; ``row_lock`` (400
UNABLE_TO_LOCK_ROW on writes), ``request_limit`` (403 REQUEST_LIMIT_EXCEEDED), ``validation_rule``
(400 FIELD_CUSTOM_VALIDATION_EXCEPTION on writes, with ``message``); and the immediate
``expire_sessions`` (every access token issued so far stops working) and
``revoke_refresh_token`` (every valid refresh token stops working)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec

FAULT_MODES = (
    "error5xx",
    "latency",
    "drop",
    "row_lock",
    "request_limit",
    "validation_rule",
    "expire_sessions",
    "revoke_refresh_token",
)
IMMEDIATE_MODES = ("expire_sessions", "revoke_refresh_token")
WRITE_MODES = ("row_lock", "validation_rule")


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
        "methods",
        "objects",
        "message",
        "hits",
        "active",
    )


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "status", "latency_ms"),
        texts=("message",),
        lists=("methods", "objects"),
    )
    return Fault(id=fault_id, **common_fault_args(options))
