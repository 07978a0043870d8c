"""Dataverse's and Microsoft Entra ID's answers, word for word where the sources show them.

Dataverse errors are `{"error": {"code": "0x...", "message": "..."}}`
(https://learn.microsoft.com/en-us/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors,
https://learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes);
service protection answers 429 with `Retry-After`
(https://learn.microsoft.com/power-apps/developer/data-platform/api-limits). Entra ID's token
errors are `{"error", "error_description": "AADSTSnnnn: ...", "error_codes": [n], "timestamp",
"trace_id", "correlation_id", "error_uri"}`
(https://learn.microsoft.com/entra/identity-platform/reference-error-codes). Facts marked
[observed] come from captures in public issues, [unconfirmed] ones are the fake's guess.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

Json = dict[str, Any]


class DvError(Exception):
    """One Dataverse error answer: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> Json:
        return {"error": {"code": self.code, "message": self.message}}


def unknown_property(name: str, entity: str) -> DvError:
    # web-api-client-errors: "Could not find a property named '...' on type
    # 'Microsoft.Dynamics.CRM.contact'" (code 0x0)
    return DvError(
        400,
        "0x0",
        "An error occurred while validating input parameters: Microsoft.OData.ODataException: "
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'.",
    )


def too_long(name: str, entity: str, limit: int) -> DvError:
    # [observed] message; the code is the fake's [unconfirmed]
    return DvError(
        400,
        "0x80044331",
        f"A validation error occurred. The length of the '{name}' attribute of the '{entity}' "
        f"entity exceeded the maximum allowed length of '{limit}'.",
    )


def outside_range(name: str, entity: str, value: Any, options: list[int]) -> DvError:
    # [observed] 0x8004431a "... is outside the valid range. Accepted Values: ..."
    return DvError(
        400,
        "0x8004431a",
        f"A validation error occurred. The value {value} of '{name}' on record of type "
        f"'{entity}' is outside the valid range. Accepted Values: {','.join(map(str, options))}",
    )


def wrong_type(value: Any, edm: str) -> DvError:
    # OData's deserializer (code 0x0); names no column [observed]
    return DvError(
        400,
        "0x0",
        "An error occurred while validating input parameters: Microsoft.OData.ODataException: "
        f"Cannot convert the literal '{value}' to the expected type '{edm}'.",
    )


def resource_not_found(segment: str) -> DvError:
    # web-api-client-errors: 0x8006088a "Resource not found for the segment 'Account'."
    return DvError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")


def does_not_exist(entity: str, record_id: str) -> DvError:
    # web-api-client-errors: 0x80040217 "contact With Id(s) = ... Does Not Exist"
    return DvError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")


def key_not_found(entity: str) -> DvError:
    # If-Match: * on an alternate key no record has: 404, nothing created [observed message]
    return DvError(
        404,
        "0x80060891",
        f"A record with the specified key values does not exist in {entity} entity",
    )


def duplicate_key(status: int = 412) -> DvError:
    # If-None-Match: * on an existing record: 412 [observed] 0x80040237
    return DvError(status, "0x80040237", "A record with matching key values already exists.")


def not_a_key(entity: str, columns: list[str]) -> DvError:
    # [unconfirmed] the answer to a key segment naming columns that are no alternate key
    return DvError(
        400,
        "0x80060888",
        f"Alternate key for entity '{entity}' with the given attributes ({', '.join(columns)}) "
        "not found.",
    )


def bad_syntax(what: str) -> DvError:
    return DvError(400, "0x80060888", f"Bad Request - Error in query syntax: {what}")


def business_rule(message: str) -> DvError:
    # a synchronous plug-in or business rule refusing the save (ISV code: 0x80040265)
    return DvError(400, "0x80040265", message)


def server_error(status: int, message: str | None) -> DvError:
    return DvError(status, "0x80040216", message or "An unexpected error occurred.")


#: service protection limits: the code, the message, for each facet (api-limits page)
THROTTLE_CODES = {
    "requests": (
        "0x80072322",
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    ),
    "execution_time": (
        "0x80072321",
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds "
        "over time window of 300 seconds. Decrease number of concurrent requests or reduce the "
        "duration of requests and try again later.",
    ),
    "concurrency": ("0x80072326", "Number of concurrent requests exceeded the limit of 52."),
}


def throttled(facet: str) -> DvError:
    code, message = THROTTLE_CODES.get(facet, THROTTLE_CODES["requests"])
    return DvError(429, code, message)


def entra_error(error: str, code: int, description: str) -> Json:
    """A token endpoint error as Entra ID writes it (AADSTS code in the description)."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: "
            f"{correlation}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def bad_secret(client_id: str) -> tuple[int, Json]:
    # [observed] 401 invalid_client AADSTS7000215
    return 401, entra_error(
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    )


def expired_secret(client_id: str) -> tuple[int, Json]:
    # [observed] 401 invalid_client AADSTS7000222 (the secret expired or was removed)
    return 401, entra_error(
        "invalid_client",
        7000222,
        f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
        "portal to create new keys for your app.",
    )


def unknown_app(client_id: str, tenant: str) -> tuple[int, Json]:
    return 400, entra_error(
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
    )


def bad_scope(scope: str) -> tuple[int, Json]:
    return 400, entra_error(
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have "
        "a scope value with /.default suffixed to the resource identifier "
        "(application ID URI).",
    )


def bad_grant(grant: str) -> tuple[int, Json]:
    return 400, entra_error(
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant}'.",
    )
