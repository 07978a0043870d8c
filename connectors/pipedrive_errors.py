"""Pipedrive's answers, classified once.

Every error answer is Pipedrive's envelope, `{"success": false, "error": "<message>",
"error_info": "Please check developers.pipedrive.com", "data": null, "additional_data": null}`
(plan-limit 403s add `"code"`): https://pipedrive.readme.io/docs/core-api-concepts-responses;
statuses: https://pipedrive.readme.io/docs/core-api-concepts-http-status-codes.

    401                      api_token: AuthError at once (a token cannot be renewed: the
                             connection pauses until it is rotated); OAuth2: one refresh and
                             one retry first (connectors/base.py), then AuthError
    402 (account not open),  AuthError: a person must act (payment, plan, permissions); the
    403                      connection pauses and holds its events instead of dead-lettering
    429                      RateLimited: Retry-After when sent; else the company's daily token
                             budget spent (`x-daily-ratelimit-token-remaining: 0`): until the
                             next UTC midnight; else the 2-second burst window
                             (`x-ratelimit-reset`): https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting
    400, 404, 410, 415, 422  DataError naming the fields the message names
    5xx, 503 maintenance     TransientError
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import default_classify, excerpt, retry_after_seconds
from core.errors import AuthError, DataError, RateLimited
from core.vocabulary import DeadCategory

#: the burst window when a 429 says nothing else (the rolling window is 2 s)
BURST_WINDOW_SECONDS = 2.0
DAILY_REMAINING = "x-daily-ratelimit-token-remaining"
DAILY_LIMIT = "x-daily-ratelimit-token-limit"
#: "Validation failed: org_id: ..." (v2's schema check) and "Name must be given." (observed:
#: pipedrive/client-nodejs#129)
_FIELD_PATH = re.compile(r"^(?:Validation failed: )?([A-Za-z_][\w.\[\]]*): ")
_MUST_BE_GIVEN = re.compile(r"^([A-Z][a-z_ ]*?) must be given", re.IGNORECASE)


def envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def message_of(response: httpx.Response) -> str:
    body = envelope(response)
    return str(body.get("error") or body.get("message") or "").strip()


def field_of(message: str) -> str | None:
    """The field a Pipedrive error message names, when it names one."""
    if match := _FIELD_PATH.match(message):
        return match.group(1).split("[", 1)[0].split(".", 1)[0]
    if match := _MUST_BE_GIVEN.match(message):
        return match.group(1).strip().lower().replace(" ", "_")
    return None


def seconds_to_utc_midnight(now: datetime | None = None) -> float:
    """The daily token budget resets at the start of the next day."""
    moment = now or datetime.now(UTC)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - moment).total_seconds())


def rate_wait(response: httpx.Response) -> tuple[float, str]:
    """(seconds to cool down, which limit) for a 429."""
    retry_after = retry_after_seconds(response)
    if retry_after is not None:
        return max(retry_after, 0.5), "Retry-After"
    if response.headers.get(DAILY_REMAINING, "").strip() == "0":
        return seconds_to_utc_midnight(), "the company's daily token budget"
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    try:
        return max(float(reset), 0.5), "the 2-second burst limit"
    except ValueError:
        return BURST_WINDOW_SECONDS, "the burst limit"


def classify(response: httpx.Response, *, api_token: bool) -> None:
    """Raise what a Pipedrive answer means (nothing for a success)."""
    status = response.status_code
    if status < 300:
        return
    said = message_of(response)
    text = excerpt(response)
    if status == 429:
        wait, which = rate_wait(response)
        raise RateLimited(
            f"Pipedrive rate limit ({which}{': ' + said if said else ''}); cooling down "
            f"{wait:.0f} s",
            status=429,
            retry_after=wait,
            excerpt=text,
        )
    if status == 401:
        fix = (
            "rotate the API token in the environment (Pipedrive: Personal preferences > API) "
            "and restart the workers, then `crmhub resume`"
            if api_token
            else "re-authorise the app and run `crmhub auth set-refresh-token`, then "
            "`crmhub resume`"
        )
        raise AuthError(
            f"Pipedrive refused our credentials (HTTP 401: {said or 'unauthorized'}); {fix}",
            status=401,
            excerpt=text,
        )
    if status in (402, 403):
        code = envelope(response).get("code")
        raise AuthError(
            f"Pipedrive refused the request (HTTP {status}: {said or 'forbidden'}"
            f"{f', {code}' if code else ''}); the account, plan or user's permissions need a "
            "person, then `crmhub resume`",
            status=status,
            excerpt=text,
        )
    if 400 <= status < 500 and status not in (408,):
        field = field_of(said)
        raise DataError(
            f"Pipedrive rejected the record (HTTP {status}): {said or 'no message'}",
            category=DeadCategory.REJECTED_BY_TARGET,
            problems=[{"field": field, "problem": said, "status": status}],
            status=status,
            excerpt=text,
        )
    default_classify(response)


def ambiguous(obj: str, ids: list[str], field: str | None) -> DataError:
    """Several Pipedrive records match one key: never a guess."""
    return DataError(
        f"{len(ids)} Pipedrive {obj} match the key (ids {', '.join(ids)}); merge them in "
        "Pipedrive (or narrow the match), then replay",
        category=DeadCategory.AMBIGUOUS_MATCH,
        problems=[{"field": field, "problem": "several records match", "candidates": ids}],
    )
