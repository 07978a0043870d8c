"""Zoho's answers, as its documents and captures show them.

Error objects are ``{"code", "details", "message", "status": "error"}`` (schema
``API_Exception`` of zoho/crm-oas v8.0 record.json; the examples of
``v8.0/record/operations/upsertRecords/examples/``: response-207-mixedresults,
response-400-mandatorynotfoundinsert, response-400-invalidmodule,
response-404-invalidurlpattern). The expired-token body is [observed] in third-party
clients (crm-apis.md 3.1); the credits-exhausted answer is [unconfirmed] (the fake's guess:
429 with the API_Exception code ``LIMIT_EXCEEDED``); the 429 body follows the OAS sample
``v8.0/apis/operations/getAvailableApis/examples/response-429-sample.md``.
"""

from __future__ import annotations

from typing import Any

from connectors.fakes.app import Json


class ZohoError(Exception):
    """A request-level refusal: the status and Zoho's error object."""

    def __init__(
        self, status: int, code: str, message: str, details: Json | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error(code, message, details)
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def error(code: str, message: str, details: Json | None = None) -> Json:
    return {"code": code, "details": details or {}, "message": message, "status": "error"}


def invalid_token() -> ZohoError:
    return ZohoError(401, "INVALID_TOKEN", "invalid oauth token")


def invalid_module() -> ZohoError:
    return ZohoError(
        400,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        {"resource_path_index": 0},
    )


def invalid_url() -> ZohoError:
    return ZohoError(
        404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
    )


def internal(message: str | None = None, status: int = 500) -> ZohoError:
    return ZohoError(status, "INTERNAL_ERROR", message or "Internal server error occurred.")


def too_many_requests(retry_after: float | None) -> ZohoError:
    if retry_after is None:  # a concurrency refusal without a hint
        return ZohoError(429, "TOO_MANY_REQUESTS", "too many requests continuously")
    seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
    return ZohoError(
        429,
        "TOO_MANY_REQUESTS",
        "too many requests continuously",
        {"retry_after": seconds, "limit": 100, "window": 60},
        Retry_After=str(seconds),
    )


def credits_exhausted() -> ZohoError:
    return ZohoError(429, "LIMIT_EXCEEDED", "API credits exhausted for the rolling 24 hours")


def body_error(message: str) -> ZohoError:
    return ZohoError(400, "INVALID_DATA", message, {"api_name": "body"})


def required_param(name: str) -> ZohoError:
    return ZohoError(
        400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param": name}
    )


def invalid_query(message: str) -> ZohoError:
    return ZohoError(400, "INVALID_QUERY", message, {"reason": "invalid query formed"})


def record_limit(limit: int) -> ZohoError:
    return ZohoError(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": limit})


# per-record errors (inside ``data``) -----------------------------------------------------


def invalid_data(field: str, index: int, **details: Any) -> Json:
    return error(
        "INVALID_DATA",
        "invalid data",
        {**details, "api_name": field, "json_path": f"$.data[{index}].{field}"},
    )


def invalid_id(field: str, index: int) -> Json:
    return error(
        "INVALID_DATA",
        "the id given seems to be invalid.",
        {"api_name": field, "json_path": f"$.data[{index}].{field}"},
    )


def mandatory_not_found(field: str, index: int) -> Json:
    return error(
        "MANDATORY_NOT_FOUND",
        "required field not found",
        {"api_name": field, "json_path": f"$.data[{index}].{field}"},
    )


def success(action: str, record: Json, duplicate_field: str | None, user: Json) -> Json:
    """One record's success (upsertRecords response-200-success)."""
    answer: Json = {"code": "SUCCESS"}
    if duplicate_field is not None:
        answer["duplicate_field"] = duplicate_field
    answer |= {
        "action": action,
        "details": {
            "Modified_Time": record["Modified_Time"],
            "Modified_By": user,
            "Created_Time": record["Created_Time"],
            "id": record["id"],
            "Created_By": user,
        },
        "message": "record added" if action == "insert" else "record updated",
        "status": "success",
    }
    return answer


# the accounts server (https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html)


def token_answer(access_token: str, api_domain: str, seconds: int) -> Json:
    return {
        "access_token": access_token,
        "scope": "ZohoCRM.modules.ALL",
        "api_domain": api_domain,
        "token_type": "Bearer",
        "expires_in": seconds,
    }


def token_error(error: str) -> Json:
    """Zoho answers these with HTTP 200 [observed]: ``invalid_code`` for a revoked or
    unknown refresh token, ``invalid_client`` for a wrong client id or secret."""
    return {"error": error}


def token_throttled() -> Json:
    """More than 10 access tokens in 10 minutes: HTTP 200, "Access Denied" (token-validity
    docs; the JSON shape is [unconfirmed])."""
    return {
        "error_description": "You have made too many requests continuously. Please try again "
        "after some time.",
        "error": "Access Denied",
        "status": "failure",
    }
