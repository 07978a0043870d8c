"""The fake Zoho's fault modes: ``error5xx`` (500 INTERNAL_ERROR), ``latency``, ``drop``;
``rate_limit`` (429 TOO_MANY_REQUESTS, with Retry-After and details.retry_after when the fault
has ``retry_after``, without any hint when it has not); ``credits`` (429 LIMIT_EXCEEDED, the
org's API credits used up); ``token_throttle`` (the accounts server answers 200 "Access
Denied"); and the immediate ``expire_tokens`` (every access token issued so far stops
working: 401 INVALID_TOKEN) and ``revoke_refresh_token`` (refreshes answer 200
``{"error": "invalid_code"}``)."""

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
    "credits",
    "token_throttle",
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
        numbers=("count", "seconds", "ratio", "retry_after", "status", "latency_ms"),
        texts=("message",),
        lists=("methods", "objects"),
    )
    return Fault(id=fault_id, **common_fault_args(options), retry_after=options["retry_after"])
