"""Salesforce's answers, classified per errorCode, not per status (the same code comes with
400 or 500, and 403 means either "no access" or "daily limit").

Sources: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
(statuses; REST errors are arrays of {message, errorCode, fields}; collection results carry
{statusCode, message, fields}); codes [observed] in public client code (crm-apis.md, 1.3).

    REQUEST_LIMIT_EXCEEDED (403)            RateLimited: a connection-wide cooldown, never a
                                            pause; no retry hint exists, so one request (of
                                            all workers) probes after 30 s, doubling to a cap
    UNABLE_TO_LOCK_ROW, SERVER_UNAVAILABLE, TransientError
    5xx, timeouts
    DUPLICATES_DETECTED                     DataError carrying the duplicate rule's matches
                                            (`duplicateResult` or `duplicateResut`)
    REQUIRED_FIELD_MISSING, STRING_TOO_LONG, INVALID_EMAIL_ADDRESS, ...   DataError naming
                                            the fields
    300 / several matches                   DataError ambiguous_match with the candidates
    401 INVALID_SESSION_ID                  (one refresh and one retry first) AuthError
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors.base import default_classify, excerpt
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.vocabulary import DeadCategory

#: the first probe after a daily-limit refusal (no Retry-After is documented)
FIRST_PROBE_SECONDS = 30.0
#: the concurrent long-running request limit clears in seconds, not hours
CONCURRENT_LIMIT_SECONDS = 5.0
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG", "QUERY_TIMEOUT"}
)
DATA_CODES = frozenset(
    {
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "STRING_TOO_LONG",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_FIELD",
        "DUPLICATE_VALUE",
        "ENTITY_IS_DELETED",
        "NOT_FOUND",
        "MALFORMED_ID",
        "INVALID_CROSS_REFERENCE_KEY",
        "JSON_PARSER_ERROR",
        "FIELD_INTEGRITY_EXCEPTION",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INVALID_TYPE",
        "MALFORMED_QUERY",
    }
)


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    """A REST error answer's array (an object answer is taken as a one-element array)."""
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def duplicate_matches(error: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a duplicate rule matched, from either spelling Salesforce uses."""
    result = error.get("duplicateResult") or error.get("duplicateResut") or {}
    matches = []
    for match in result.get("matchResults") or []:
        for found in match.get("matchRecords") or []:
            record = found.get("record") or {}
            matches.append(
                {
                    "id": record.get("Id"),
                    "object": match.get("entityType"),
                    "rule": result.get("duplicateRule"),
                    "confidence": found.get("matchConfidence"),
                }
            )
    return matches


def error_for(
    error: dict[str, Any], *, status: int | None, text: str, probe: float | None = None
) -> HubError:
    """The hub error one Salesforce error element means. `probe`: the wait before probing
    the daily limit again (the connector's backoff)."""
    code = str(error.get("errorCode") or error.get("statusCode") or "")
    message = str(error.get("message") or code or "record failed")
    fields = [f for f in error.get("fields") or [] if isinstance(f, str)]
    said = f"Salesforce {code}: {message}" if code else f"Salesforce: {message}"
    if code == "REQUEST_LIMIT_EXCEEDED":
        concurrent = "Concurrent" in message
        wait = CONCURRENT_LIMIT_SECONDS if concurrent else (probe or FIRST_PROBE_SECONDS)
        return RateLimited(
            f"{said} (the org's {'concurrent request' if concurrent else 'daily API'} limit; "
            f"trying one request again in {wait:.0f} s)",
            status=status,
            retry_after=wait,
            excerpt=text,
        )
    if code in TRANSIENT_CODES:
        return TransientError(said, status=status, excerpt=text)
    if code == "INVALID_SESSION_ID":
        return AuthError(f"{said}; a new session did not help", status=status, excerpt=text)
    if code == "DUPLICATES_DETECTED":
        matches = duplicate_matches(error)
        return DataError(
            f"{said} (a duplicate rule matched {len(matches)} existing record(s): "
            f"{', '.join(str(m['id']) for m in matches)})",
            category=DeadCategory.REJECTED_BY_TARGET,
            problems=[
                {
                    "field": None,
                    "problem": "a duplicate rule blocks the save",
                    "code": code,
                    "duplicates": matches,
                }
            ],
            status=status,
            excerpt=text,
        )
    if code in DATA_CODES or (status is not None and status < 500 and code):
        return DataError(
            said,
            category=DeadCategory.REJECTED_BY_TARGET,
            problems=[{"field": f, "problem": message, "code": code} for f in fields]
            or [{"field": None, "problem": message, "code": code}],
            status=status,
            excerpt=text,
        )
    return TransientError(said, status=status, excerpt=text)


def classify(response: httpx.Response, probe: float | None = None) -> None:
    """Raise what a Salesforce answer means (nothing for a success)."""
    status = response.status_code
    if status < 300:
        return
    if status == 300:
        raise ambiguous(_candidates(response), excerpt(response))
    errors = errors_of(response)
    code = str(errors[0].get("errorCode") or "") if errors else ""
    known = (
        code in ("REQUEST_LIMIT_EXCEEDED", "DUPLICATES_DETECTED")
        or code in TRANSIENT_CODES
        or code in DATA_CODES
    )
    if known or (code and 400 <= status < 500 and status not in (401, 403)):
        raise error_for(errors[0], status=status, text=excerpt(response), probe=probe)
    # 401 after the refresh, 403 without a known code (no access: a person must act, the
    # connection pauses), 5xx without a code: the default table
    default_classify(response)


def _candidates(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    return [str(item).rsplit("/", 1)[-1] for item in body] if isinstance(body, list) else []


def ambiguous(candidates: list[str], text: str, field: str | None = None) -> DataError:
    """Several target records match one key: never a guess."""
    return DataError(
        f"{len(candidates)} Salesforce records match the key ({', '.join(candidates)}); "
        "merge them in Salesforce (or narrow the match), then replay",
        category=DeadCategory.AMBIGUOUS_MATCH,
        problems=[{"field": field, "problem": "several records match", "candidates": candidates}],
        status=300,
        excerpt=text or json.dumps(candidates),
    )
