"""HubSpot's answers, word for word: the error bodies and texts the fake sends, each with the
capture or document it follows (see the package docstring for the sources)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from connectors.fakes.app import Json

if TYPE_CHECKING:
    from connectors.fakes.hubspot.config import Config
    from connectors.fakes.hubspot.faults import Fault
    from connectors.fakes.hubspot.properties import ObjectType, PropError

# HubSpot answers application/json;charset=utf-8, no space [CAPTURE: header dump quoted in
# a public sandbox-fidelity document, "Content type | application/json;charset=utf-8"].
JSON_TYPE = "application/json;charset=utf-8"
API_BASE = "https://api.hubapi.com"

# --- HubSpot's texts ------------------------------------------------------------------------

# 401 for a missing or unknown token [CAPTURE: raw logs quoted in a public sandbox-fidelity
# document; also jeremylongshore/claude-code-plugins-plus-skills hubspot-common-errors].
AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
# The batch limit text is assumed by analogy with the observed property-history limit text
# [CAPTURE: activepieces/activepieces PR #9359: "The maximum number of inputs supported in a
# batch request for property histories is 50. Please reduce the number of items and try again"].
BATCH_LIMIT_MESSAGE = (
    "The maximum number of inputs supported in a batch request is {limit}. "
    "Please reduce the number of items and try again"
)


def now_iso(ts: float | None = None) -> str:
    """HubSpot's timestamp form, ``2019-10-30T03:30:17.883Z`` [SPEC SimplePublicObject example]."""
    moment = dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def hs_error(
    message: str,
    *,
    category: str | None = None,
    errors: list[Json] | None = None,
    context: dict[str, list[str]] | None = None,
    **extra: Any,
) -> Json:
    """HubSpot's error body: status, message, correlationId, then errors, context, category when
    present [SPEC components.schemas.Error; ERRORS; key order as in the captures below]."""
    body: Json = {"status": "error", "message": message, "correlationId": new_correlation_id()}
    if errors:
        body["errors"] = errors
    if context:
        body["context"] = context
    if category:
        body["category"] = category
    body.update(extra)
    return body


def property_error_body(errors: list[PropError], portal_id: int) -> Json:
    """HubSpot's 400 for invalid property values (see check_properties for the capture)."""
    items = [
        {
            "isValid": False,
            "message": err.message,
            "error": err.code,
            "name": err.name,
            "localizedErrorMessage": err.message,
            "portalId": portal_id,
        }
        for err in errors
    ]
    return hs_error(
        "Property values were not valid: "
        + json.dumps(items, separators=(",", ":"), ensure_ascii=False),
        errors=[
            {"message": err.message, "code": err.code, "context": {"propertyName": [err.name]}}
            for err in errors
        ],
        category="VALIDATION_ERROR",
    )


def conflict_body(otype: ObjectType, existing_id: str) -> Json:
    """[CAPTURE 409: {"status":"error","message":"Contact already exists. Existing ID: 1234",
    "correlationId":...,"category":"CONFLICT"}, HubSpot/hubspot-api-python issue #51 (batch
    create) and many integrations that parse "Existing ID: <id>" out of it.] HubSpot began
    sending a longer variant (category OBJECT_ALREADY_EXISTS, error CONTACT_EXISTS) to some
    accounts in 2024 (community.hubspot.com thread "Updated 409 Conflict responses"); the
    classic CONFLICT body is what this fake sends. The company text is the fake's analogue."""
    return hs_error(
        f"{otype.label} already exists. Existing ID: {existing_id}", category="CONFLICT"
    )


def not_found_body() -> Json:
    """A numeric id that does not exist [CAPTURE, per a public sandbox-fidelity document:
    404 {"status":"error","message":"resource not found","correlationId":...}]."""
    return hs_error("resource not found")


def objects_not_found(otype: ObjectType, ids: list[str]) -> Json:
    """One batch error entry for missing records [CAPTURE: {"status":"error","category":
    "OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not
    exist. Check that ids are valid.","context":{"ids":[...]}} with 207, quoted in several
    public HubSpot integrations' fixtures]."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": (
            f"Could not get some {otype.singular} objects, they may be deleted or not exist. "
            "Check that ids are valid."
        ),
        "context": {"ids": ids},
    }


def expired_body(ago: float, expired_at: float) -> Json:
    """[CAPTURE: {"status":"error","message":"The OAuth token used to make this call expired 75
    second(s) ago.","correlationId":...,"category":"EXPIRED_AUTHENTICATION","context":{"expire
    time":["2022-06-21T10:37:52.040Z"]}} (quoted in a public C# integration); "expired 5
    minute(s) ago" (useparagon.com). The unit switch points are the fake's guess.]"""
    seconds = max(int(ago), 0)
    if seconds < 120:
        amount = f"{seconds} second(s)"
    elif seconds < 7200:
        amount = f"{seconds // 60} minute(s)"
    else:
        amount = f"{seconds // 3600} hour(s)"
    return hs_error(
        f"The OAuth token used to make this call expired {amount} ago.",
        context={"expire time": [now_iso(expired_at)]},
        category="EXPIRED_AUTHENTICATION",
    )


def rate_limit_body(policy: str, config: Config, fault: Fault | None) -> Json:
    """[CAPTURE ten-secondly: {"status":"error","message":"You have reached your
    ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":...,"policyName":
    "TEN_SECONDLY_ROLLING","groupName":"publicapi:private_app-api-calls-ten-secondly:<app>:<portal>"}
    ; daily: "You have reached your daily limit." with policyName DAILY and a requestId; search:
    "You have reached your secondly limit." (bodies quoted in several public HubSpot clients'
    tests).] HubSpot sends no Retry-After with these; a fault may add one (retry_after)."""
    if policy == "DAILY":
        message = "You have reached your daily limit."
    elif policy == "SECONDLY":
        message = "You have reached your secondly limit."
    else:
        message = "You have reached your ten_secondly_rolling limit."
    if fault is not None and fault.message:
        message = fault.message
    body: Json = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": new_correlation_id(),
        "policyName": policy,
    }
    if policy == "TEN_SECONDLY_ROLLING":
        body["groupName"] = (
            f"publicapi:private_app-api-calls-ten-secondly:{config.app_id}:{config.portal_id}"
        )
    else:
        body["requestId"] = str(uuid.uuid4())
    return body


def non_numeric_id(ident: str) -> Json:
    """[CAPTURE, per a public sandbox-fidelity document: 404 "Object not found.  objectId are
    usually numeric." (two spaces) with context.id and category OBJECT_NOT_FOUND] - what a client
    gets when it forgets ``idProperty=email``."""
    return hs_error(
        "Object not found.  objectId are usually numeric.",
        context={"id": [ident]},
        category="OBJECT_NOT_FOUND",
    )
