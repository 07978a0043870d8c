"""Pipedrive's answers, word for word where the sources show them.

The error envelope: ``{"success": false, "error": ..., "error_info": ..., "data": null,
"additional_data": null}`` (https://pipedrive.readme.io/docs/core-api-concepts-responses; the
v1 OpenAPI document's error answers, e.g. ``POST /callLogs`` 400). Statuses:
https://pipedrive.readme.io/docs/core-api-concepts-http-status-codes.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def error(message: str, *, code: str | None = None, error_info: str = ERROR_INFO) -> Json:
    body: Json = {
        "success": False,
        "error": message,
        "error_info": error_info,
        "data": None,
        "additional_data": None,
    }
    if code is not None:
        body["code"] = code
    return body


def unauthorized() -> Json:
    # [observed] {"success":false,"error":"unauthorized access","errorCode":401,
    # "error_info":"Please check developers.pipedrive.com"} (crm-apis.md 2.1)
    body = error("unauthorized access", error_info="Please check developers.pipedrive.com")
    body["errorCode"] = 401
    return body


def invalid_token() -> Json:
    # marketplace-oauth-and-api-proxy-status-codes: 401 "Invalid token: ..." for an expired
    # or unknown OAuth access token (exact body [unconfirmed]: the envelope above)
    body = error("Invalid token: access token is invalid or expired")
    body["errorCode"] = 401
    return body


def validation(path: str, problem: str) -> Json:
    # v2's schema check; message form [unconfirmed], envelope and status documented
    return error(f"Validation failed: {path}: {problem}", code="ERR_SCHEMA_VALIDATION_FAILED")


def name_required() -> Json:
    # [observed] pipedrive/client-nodejs#129: 400 "Name must be given."
    return error("Name must be given.")


def not_found(obj: str) -> Json:
    # the v2 document's 404 example: {"success": false, "error": "Entity was not found",
    # "error_info": "Object was not found.", ...}
    return error(f"{obj.rstrip('s').capitalize()} not found", error_info="Object was not found.")


def rate_limited() -> Json:
    # 429 body [unconfirmed]; the envelope is Pipedrive's
    return error("Request over limit. Please try again later.", code="rate_limit_exceeded")


def server_error(message: str | None = None) -> Json:
    # [observed] pipedrive/client-php#234: {"success":false,"error":"Internal Server Error",
    # "code":"ERR_UNKNOWN"}
    return error(message or "Internal Server Error", code="ERR_UNKNOWN")


def oauth_error(message: str) -> Json:
    # marketplace-oauth-and-api-proxy-status-codes: 400 "Invalid grant: refresh_token is
    # invalid", "Invalid client: client is invalid" (JSON shape [unconfirmed])
    return {"success": False, "message": message, "error": message.split(":", 1)[0]}
