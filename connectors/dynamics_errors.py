"""Dataverse's answers, classified once: by the OData error body's `code` first, then by status.

An error answer (the whole response, or one part of a `$batch` answer) is
`{"error": {"code": "0x80040217", "message": "..."}}`
(https://learn.microsoft.com/en-us/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors,
https://learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes).

    429, codes 0x80072322 / 0x80072321 /  RateLimited: the service protection limits (per
    0x80072326                            application user, 5-minute sliding window); wait
                                          `Retry-After` (connection-wide cooldown), as
                                          https://learn.microsoft.com/power-apps/developer/data-platform/api-limits
                                          asks: the wait grows for a client that keeps sending
    5xx, SQL deadlock / timeout messages  TransientError
    401 (after one new token)             AuthError: the connection pauses
    403 0x80040220 / 0x80048306 /         AuthError: the application user lacks a privilege
    0x80095ffc                            or the app is blocked; a person must act
    400 unknown property (0x0), value     DataError naming the field (the column is parsed
    out of an option set (0x8004431a),    from Dataverse's message)
    text too long (0x80044331), ...
    404 0x80040217 (a bound record gone)  DataError (the connector names the link field)
    412 0x80040237                        DataError, unless the mapping's mode expects it
                                          (the connector answers create_only/update_only)
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from connectors.base import default_classify, excerpt, retry_after_seconds
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.vocabulary import DeadCategory

#: service protection: number of requests, combined execution time, concurrent requests
RATE_LIMIT_CODES = {
    "0x80072322": "number of requests",
    "0x80072321": "combined execution time",
    "0x80072326": "concurrent requests",
}
#: a 429 with no Retry-After (the docs promise one; a proxy may strip it): wait this long
DEFAULT_RETRY_AFTER_SECONDS = 5.0
#: the application user lacks a privilege / an access right / the app is blocked by policy
AUTH_CODES = frozenset({"0x80040220", "0x80048306", "0x80095ffc"})
RECORD_MISSING = "0x80040217"
DUPLICATE_KEY = "0x80040237"
UNKNOWN_SEGMENT = "0x8006088a"
#: SQL deadlocks and timeouts surface as generic SQL errors with these words [observed]
_TRANSIENT_WORDS = re.compile(r"deadlock|SQL timeout|timeout expired|try again", re.I)
# the column a validation message names (word for word as Dataverse writes them [observed])
_FIELD_PATTERNS = (
    re.compile(r"property named '([^']+)'"),
    re.compile(r"The length of the '([^']+)' attribute"),
    re.compile(r"The value [^ ]* of '([^']+)' on record of type"),
    re.compile(r"for (?:the )?(?:property|attribute) '([^']+)'"),
)


def odata_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an OData error body; ("", "") when it is not one."""
    try:
        body: Any = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def field_named(message: str) -> str | None:
    """The column a Dataverse validation message is about, if it names one."""
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def error_for(response: httpx.Response) -> HubError | None:
    """The hub error a Dataverse answer means (None for a success)."""
    status = response.status_code
    if status < 300:
        return None
    code, message = odata_error(response)
    said = f"Dataverse {code}: {message}" if code else f"Dataverse answered HTTP {status}"
    text = excerpt(response)
    if status == 429 or code in RATE_LIMIT_CODES:
        wait = retry_after_seconds(response)
        limit = RATE_LIMIT_CODES.get(code, "a service protection limit")
        return RateLimited(
            f"{said} (service protection: {limit}; cooling the connection down "
            f"{'for Retry-After' if wait is not None else 'without Retry-After'}, "
            f"{wait if wait is not None else DEFAULT_RETRY_AFTER_SECONDS:g} s)",
            status=status,
            retry_after=wait if wait is not None else DEFAULT_RETRY_AFTER_SECONDS,
            excerpt=text,
        )
    if status >= 500 or (code and _TRANSIENT_WORDS.search(message)):
        return TransientError(
            said, status=status, retry_after=retry_after_seconds(response), excerpt=text
        )
    if status == 401:
        return AuthError(
            "Dataverse refused our access token (HTTP 401) even after a new one; check the "
            "app registration and its application user in the environment",
            status=status,
            excerpt=text,
        )
    if status == 403 or code in AUTH_CODES:
        return AuthError(
            f"{said} (the application user needs a security role granting this; a person "
            "must act, then `crmhub resume`)",
            status=status,
            excerpt=text,
        )
    if code == UNKNOWN_SEGMENT:
        return DataError(
            f"{said} (no such entity set: the mapping's object must be the entity set name, "
            "e.g. contacts, accounts)",
            category=DeadCategory.MAPPING,
            status=status,
            excerpt=text,
        )
    if status < 500 and (code or status >= 400):
        field = field_named(message)
        return DataError(
            said,
            category=DeadCategory.REJECTED_BY_TARGET,
            problems=[{"field": field, "problem": message or f"HTTP {status}", "code": code}],
            status=status,
            excerpt=text,
        )
    try:
        default_classify(response)  # a redirect: never counted as delivered
    except HubError as exc:
        return exc
    return None


def classify(response: httpx.Response) -> None:
    """Raise what a Dataverse answer means (nothing for a success)."""
    error = error_for(response)
    if error is not None:
        raise error
