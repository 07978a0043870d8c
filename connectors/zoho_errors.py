"""Zoho CRM's answers, classified once, per `code` (the same status carries different
meanings: a 400 is one record's bad value or a request the connector built wrongly).

Error bodies are `{"code", "details", "message", "status": "error"}`, at the top of the
answer for a request-level refusal, inside `data[i]` for a record's own outcome (HTTP 207
when results are mixed, 400 when every record failed). Sources: the official OpenAPI
documents (zoho/crm-oas v8.0, schema `API_Exception` in record.json, and the examples of
`v8.0/record/operations/upsertRecords/`: response-207-mixedresults, response-400-*,
response-401-oauthscopemismatch); crm-apis.md section 3 for what is [observed].

    401 INVALID_TOKEN (after one refresh),  AuthError: pause, hold, alert (a person must
    AUTHENTICATION_FAILURE,                 re-authorise or grant the scope)
    OAUTH_SCOPE_MISMATCH, 403 NO_PERMISSION
    429 TOO_MANY_REQUESTS (concurrency),    RateLimited: a connection-wide cooldown for the
    429 LIMIT_EXCEEDED (API credits)        Retry-After (header, or details.retry_after);
                                            without one, the connector's doubling cooldown
    INTERNAL_ERROR, DEPENDENT_SERVICE_ERROR, TransientError
    5xx, timeouts
    INVALID_DATA, MANDATORY_NOT_FOUND,      DataError naming the field (details.api_name,
    DUPLICATE_DATA, DEPENDENT_*, ...        json_path) and what Zoho expected
                                            (expected_data_type, maximum_length,
                                            supported_values, the duplicate record)
    MULTIPLE_OR_MULTI_ERRORS                DataError with every error of details.errors
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import default_classify, excerpt, retry_after_seconds
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.vocabulary import DeadCategory

AUTH_CODES = frozenset(
    {"INVALID_TOKEN", "INVALID_OAUTHTOKEN", "AUTHENTICATION_FAILURE", "OAUTH_SCOPE_MISMATCH"}
)
TRANSIENT_CODES = frozenset({"INTERNAL_ERROR", "DEPENDENT_SERVICE_ERROR", "CANNOT_PROCESS"})
#: what each detail Zoho gives says about the value, for the dead letter
EXPECTATIONS = ("expected_data_type", "maximum_length", "supported_values", "regex")


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def request_error(response: httpx.Response) -> dict[str, Any] | None:
    """The request-level error of an answer: the top-level object, or (as Zoho's own
    upsert example for INVALID_MODULE shows it) the one element of `data` that has no
    record behind it. None when the answer lists per-record results."""
    body = body_of(response)
    if isinstance(body, dict) and body.get("status") == "error" and body.get("code"):
        return body
    return None


def rate_wait(error: dict[str, Any], response: httpx.Response) -> float | None:
    """The wait Zoho asks for: Retry-After, else the body's details.retry_after."""
    header = retry_after_seconds(response)
    if header is not None:
        return header
    details = error.get("details")
    hint = details.get("retry_after") if isinstance(details, dict) else None
    return float(hint) if isinstance(hint, int | float) and not isinstance(hint, bool) else None


def error_for(
    error: dict[str, Any], *, status: int | None, text: str, wait: float | None = None
) -> HubError:
    """The hub error one Zoho error object means. `wait`: the cooldown of a rate limit."""
    code = str(error.get("code") or "")
    message = str(error.get("message") or code or "record failed")
    said = f"Zoho {code}: {message}" if code else f"Zoho: {message}"
    if status == 429 or code == "TOO_MANY_REQUESTS":
        kind = "API credits" if code == "LIMIT_EXCEEDED" else "concurrency"
        return RateLimited(
            f"{said} (the org's {kind} limit; cooling down"
            f"{f' {wait:.0f} s' if wait is not None else ''})",
            status=status,
            retry_after=wait,
            excerpt=text,
        )
    if code in AUTH_CODES or code == "NO_PERMISSION" or status in (401, 403):
        fix = (
            "grant the missing permission or scope (ZohoCRM.modules.ALL), then re-authorise"
            if code in ("NO_PERMISSION", "OAUTH_SCOPE_MISMATCH")
            else "a new access token did not help; re-authorise the Self Client"
        )
        return AuthError(f"{said}; {fix}", status=status, excerpt=text)
    if code in TRANSIENT_CODES or (status is not None and status >= 500):
        return TransientError(said, status=status, excerpt=text)
    if not code:
        return TransientError(said, status=status, excerpt=text)
    problems = problems_of(error)
    named = ", ".join(str(p["field"]) for p in problems if p.get("field"))
    return DataError(
        f"{said}{f' ({named})' if named else ''}",
        category=DeadCategory.REJECTED_BY_TARGET,
        problems=problems,
        status=status,
        excerpt=text,
    )


def problems_of(error: dict[str, Any]) -> list[dict[str, Any]]:
    """One problem per field Zoho names (every error of a MULTIPLE_OR_MULTI_ERRORS)."""
    found = error.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    nested = details.get("errors")
    if error.get("code") == "MULTIPLE_OR_MULTI_ERRORS" and isinstance(nested, list):
        return [p for e in nested if isinstance(e, dict) for p in problems_of(e)]
    problem: dict[str, Any] = {
        "field": details.get("api_name"),
        "problem": str(error.get("message") or error.get("code") or ""),
        "code": error.get("code"),
    }
    if details.get("json_path"):
        problem["json_path"] = details["json_path"]
    for key in EXPECTATIONS:
        if key in details:
            problem[key] = details[key]
    duplicate = details.get("duplicate_record")
    if isinstance(duplicate, dict):
        problem["duplicates"] = [
            {"id": duplicate.get("id"), "module": (duplicate.get("module") or {}).get("api_name")}
        ]
    return [problem]


def classify(response: httpx.Response, wait: float | None = None) -> None:
    """Raise what a Zoho answer means as a whole (nothing for one that lists per-record
    results: those are each record's own, see `error_for`)."""
    status = response.status_code
    if status < 300:
        return
    error = request_error(response)
    if error is not None:
        raise error_for(error, status=status, text=excerpt(response), wait=wait)
    if status == 429:  # no body Zoho documents for it: still a rate limit
        raise RateLimited(
            "Zoho answered HTTP 429", status=status, retry_after=wait, excerpt=excerpt(response)
        )
    # 207 and 400 with `data`: per-record outcomes, read by the connector
    body = body_of(response)
    if status in (207, 400) and isinstance(body, dict) and isinstance(body.get("data"), list):
        return
    default_classify(response)
