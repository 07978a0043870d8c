"""The fake HubSpot's fault modes: errors, latency and drops on chosen endpoints, forced 429s,
and the immediate ``expire_tokens`` / ``revoke_refresh_token``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from connectors.fakes.app import Json
from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec
from connectors.fakes.hubspot.properties import OBJECT_ALIASES

FAULT_MODES = (
    "error5xx",
    "latency",
    "drop",
    "rate_limit_burst",
    "rate_limit_daily",
    "expire_tokens",
    "revoke_refresh_token",
)
IMMEDIATE_MODES = ("expire_tokens", "revoke_refresh_token")


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
        "methods",
        "objects",
        "endpoints",
        "message",
        "hits",
        "active",
    )

    retry_after: float | None = None
    endpoints: tuple[str, ...] | None = None

    def matches(self, method: str, endpoint: str, obj: str | None) -> bool:
        if not self.targets(method, obj):
            return False
        if self.endpoints is None:
            return endpoint != "oauth.token"
        return any(
            pattern == "*"
            or endpoint == pattern
            or endpoint.startswith(pattern + ".")
            or (pattern == "crm" and endpoint != "oauth.token")
            for pattern in self.endpoints
        )

    def describe_extra(self) -> Json:
        return {
            "retry_after": self.retry_after,
            "endpoints": list(self.endpoints) if self.endpoints is not None else None,
        }


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "status", "latency_ms", "retry_after"),
        texts=("message",),
        lists=("methods", "objects", "endpoints"),
    )
    if options["objects"] is not None:
        options["objects"] = [OBJECT_ALIASES.get(o, o) for o in options["objects"]]
    endpoints = options["endpoints"]
    return Fault(
        id=fault_id,
        **common_fault_args(options),
        retry_after=options["retry_after"],
        endpoints=tuple(endpoints) if endpoints is not None else None,
    )
