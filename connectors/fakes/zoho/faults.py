"""The fake Zoho's fault modes: ``error5xx`` (500 INTERNAL_ERROR), ``latency``, ``drop``;
``rate_limit`` (429 TOO_MANY_REQUESTS, with Retry-After and details.retry_after when the fault
has ``retry_after``, without any hint when it has not); ``credits`` (429 LIMIT_EXCEEDED, the
org's API credits used up); ``token_throttle`` (the accounts server answers 200 "Access
Denied"); and the immediate ``expire_tokens`` (every access token issued so far stops
working: 401 INVALID_TOKEN) and ``revoke_refresh_token`` (refreshes answer 200
``{"error": "invalid_code"}``)."""

from __future__ import annotations

from typing import Any

from connectors.fakes.faults import RetryAfterFault, parse_retry_after_fault

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


#: a fault of this fake: the common options and `retry_after` (connectors/fakes/faults.py)
Fault = RetryAfterFault


def parse_fault(spec: Any, fault_id: int) -> Fault:
    return parse_retry_after_fault(spec, fault_id, FAULT_MODES)
