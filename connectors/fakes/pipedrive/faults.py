"""The fake Pipedrive's fault modes: ``error5xx`` (Pipedrive's 500/503 envelope),
``latency``, ``drop``, ``rate_limit`` (a 429 storm; with ``retry_after`` the answers carry
Retry-After, without it only the ``x-ratelimit-*`` headers, as Pipedrive documents), and the
immediate ``expire_tokens`` (every OAuth access token issued so far stops working),
``revoke_api_token`` (the API token stops working, as when a user regenerates it) and
``revoke_refresh_token``."""

from __future__ import annotations

from typing import Any

from connectors.fakes.faults import RetryAfterFault, parse_retry_after_fault

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


#: a fault of this fake: the common options and `retry_after` (connectors/fakes/faults.py)
Fault = RetryAfterFault


def parse_fault(spec: Any, fault_id: int) -> Fault:
    return parse_retry_after_fault(spec, fault_id, FAULT_MODES)
