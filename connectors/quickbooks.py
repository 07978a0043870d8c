"""QuickBooks Online (Accounting API v3): a connection the hub reads from, never writes to.

QuickBooks webhooks carry only ids (`{name: "Invoice", id: "130", operation, lastUpdated}`),
so a mapping's `fetch:` reads the entity before mapping it
(examples/recipes/accounting-quickbooks.yaml):
`GET {base_url}/v3/company/{realm_id}/{entity}/{id}?minorversion=N` answers
`{"Invoice": {...}, "time": "..."}` and the record is the object under the entity's name
(https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice,
"Read an invoice"; payment, customer alike). `fetch.object` is the entity as the webhook names
it (Invoice, Payment, Customer, ...); the URL takes it lower-cased, as Intuit's do.

Connection: `base_url` https://quickbooks.api.intuit.com (sandbox:
https://sandbox-quickbooks.api.intuit.com), `options.realm_id` (the company: a connection is
authorised for one), `options.minor_version` (default 75), auth `oauth2` against Intuit's
token endpoint, which takes the app's credentials as HTTP Basic
(https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0,
"Step 5: Exchange authorization code for access tokens"; refresh likewise), refresh tokens
rotating (the new one is kept with the access token, as for every OAuth2 connection).

Errors, translated here once (https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes):
  400 Fault ValidationFault, code 610 "Object Not Found"  -> DataError source_record_missing
  other 400 faults                                         -> DataError rejected_by_target
  401 AuthenticationFailed (code 3200)                     -> one token refresh, then AuthError
  403 (no access to that company)                          -> AuthError: the connection pauses
  429 ThrottleExceeded (code 003001)                       -> RateLimited (Intuit sends no
                                                              Retry-After: 60 s, its window)
  5xx, timeouts                                            -> TransientError
Writes are refused with a data error naming the connector: QuickBooks is a source here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors.base import Connector, WriteResult, default_classify, excerpt
from core.errors import DataError, RateLimited
from core.mapping import MappedRecord
from core.vocabulary import DeadCategory

API = "https://quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
DEFAULT_MINOR_VERSION = 75
#: Intuit's throttle is per minute per company (500 requests); it sends no Retry-After
THROTTLE_WINDOW_SECONDS = 60.0
OBJECT_NOT_FOUND = "610"


def fault_errors(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """(fault type, errors) of an Intuit fault body, in either spelling Intuit uses:
    `{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}` or lower-case keys."""
    try:
        body = response.json()
    except ValueError:
        return "", []
    if not isinstance(body, dict):
        return "", []
    fault = body.get("Fault") or body.get("fault") or {}
    if not isinstance(fault, dict):
        return "", []
    errors = fault.get("Error") or fault.get("error") or []
    listed = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return str(fault.get("type") or ""), listed


def _text(error: dict[str, Any], key: str) -> str:
    return str(error.get(key) or error.get(key.lower()) or "")


class QuickBooksConnector(Connector):
    name = "quickbooks"
    default_token_url = TOKEN_URL
    default_token_lifetime = 3600.0  # Intuit's access tokens live an hour (expires_in 3600)
    token_client_auth = "basic"

    @property
    def realm_id(self) -> str:
        realm = str(self.connection.options.get("realm_id") or "")
        if not realm:
            raise DataError(
                f"connection {self.connection.name!r} names no company: set "
                "options.realm_id (the realmId the app was authorised for)",
                category=DeadCategory.MAPPING,
            )
        return realm

    def classify(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        kind, errors = fault_errors(response)
        codes = {_text(e, "code") for e in errors}
        summary = "; ".join(f"{_text(e, 'Message')} ({_text(e, 'Detail')})".strip() for e in errors)
        if status == 400 and OBJECT_NOT_FOUND in codes:
            raise DataError(
                f"QuickBooks has no such record: {summary}",
                category=DeadCategory.SOURCE_RECORD_MISSING,
                status=400,
                excerpt=excerpt(response),
            )
        if status == 429:
            raise RateLimited(
                f"QuickBooks throttled the company's requests: {summary or kind}",
                status=429,
                retry_after=THROTTLE_WINDOW_SECONDS,
                excerpt=excerpt(response),
            )
        if status == 400:
            raise DataError(
                f"QuickBooks refused the request ({kind or 'fault'}): {summary}",
                category=DeadCategory.REJECTED_BY_TARGET,
                status=400,
                excerpt=excerpt(response),
            )
        default_classify(response)

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        """The entity `obj` (Invoice, Payment, Customer...) with id `record_id`, as QuickBooks
        answers it (every field; `properties` does not narrow a QuickBooks read)."""
        minor = self.connection.options.get("minor_version", DEFAULT_MINOR_VERSION)
        path = (
            f"/v3/company/{quote(self.realm_id, safe='')}/{quote(obj.lower(), safe='')}/"
            f"{quote(record_id, safe='')}"
        )
        response = self.request(
            "GET", path, params={"minorversion": str(minor)}, headers={"Accept": "application/json"}
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        record = body.get(obj) if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise DataError(
                f"QuickBooks answered {obj} {record_id} without an {obj!r} object",
                category=DeadCategory.REJECTED_BY_TARGET,
                status=response.status_code,
                excerpt=excerpt(response),
            )
        return record

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        raise DataError(read_only(self.connection.name), category=DeadCategory.MAPPING)

    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        raise DataError(read_only(self.connection.name), category=DeadCategory.MAPPING)


def read_only(connection: str) -> str:
    return (
        f"connection {connection!r} is QuickBooks, which the hub reads from (a mapping's "
        "fetch:) and never writes to; point the mapping at a CRM connection"
    )
