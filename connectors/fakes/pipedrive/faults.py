"""The fake Pipedrive's fault modes: ``error5xx`` (Pipedrive's 500/503 envelope),
``latency``, ``drop``, ``rate_limit`` (a 429 storm; with ``retry_after`` the answers carry
Retry-After, without it only the ``x-ratelimit-*`` headers, as Pipedrive documents), and the
immediate ``expire_tokens`` (every OAuth access token issued so far stops working),
``revoke_api_token`` (the API token stops working, as when a user regenerates it) and
``revoke_refresh_token``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from connectors.fakes.app import Json
from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec

FAULT_MODES = (
    "error5xx",
    "latency",
    "drop",
    "rate_limit",
    "expire_tokens",
    "revoke_api_token",
    "revoke_refresh_token",
)
IMMEDIATE_MODES = ("expire_tokens", "revoke_api_token", "revoke_refresh_token")


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
        "retry_after",
        "latency_ms",
        "methods",
        "objects",
        "message",
        "hits",
        "active",
    )
    retry_after: float | None = None

    def describe_extra(self) -> Json:
        return {"retry_after": self.retry_after}


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "status", "retry_after", "latency_ms"),
        texts=("message",),
        lists=("methods", "objects"),
    )
    return Fault(id=fault_id, retry_after=options.get("retry_after"), **common_fault_args(options))
