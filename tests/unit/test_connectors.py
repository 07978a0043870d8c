"""Connectors (connectors/base.py, connectors/http.py) against an httpx.MockTransport target.

The error bodies below mimic real CRMs so the excerpts kept in dead letters are what an
operator would see:
  * HubSpot's common error shape {status, message, errors, category, correlationId}:
    https://developers.hubspot.com/docs/faq/api-error-responses
  * Salesforce's REST errors, a list of {message, errorCode} (401 INVALID_SESSION_ID):
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
  * Salesforce Marketing Cloud's 429 with `Retry-After: 5` and {message, errorcode, retryAfter}:
    https://developer.salesforce.com/docs/atlas.en-us.noversion.mc-apis.meta/mc-apis/rate-limiting-errors.htm
  * Retry-After as delta-seconds or an HTTP-date: RFC 9110, section 10.2.3.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.base import EXCERPT_CHARS, retry_after_seconds
from connectors.http import HttpConnector
from core.config import ConnectionConfig
from core.errors import AuthError, DataError, RateLimited, TransientError
from core.mapping.engine import FieldResult, MappedRecord

BASE = "https://crm.example.com/api/v3"

HUBSPOT_VALIDATION = {
    "status": "error",
    "message": 'Property values were not valid: [{"isValid":false,"message":"Email address '
    'ada@@example is invalid","error":"INVALID_EMAIL","name":"email"}]',
    "errors": [{"message": "Email address ada@@example is invalid", "in": "email"}],
    "category": "VALIDATION_ERROR",
    "correlationId": "a43683b0-5717-4ceb-80b4-104d02915d8c",
}
HUBSPOT_CONFLICT = {
    "status": "error",
    "message": "Contact already exists. Existing ID: 5102",
    "category": "CONFLICT",
    "correlationId": "0b9d2a54-1bba-4a4c-9b9e-2f0c1c7a8d11",
}
SALESFORCE_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
SALESFORCE_FORBIDDEN = [
    {
        "message": "The REST API is not enabled for this Organization.",
        "errorCode": "API_DISABLED_FOR_ORG",
    }
]
MARKETING_CLOUD_429 = {
    "message": "Rate limit exceeded",
    "errorcode": 50100,
    "retryAfter": 5,
    "documentation": "https://developer.salesforce.com/docs/atlas.en-us."
    "mc-apis.meta/mc-apis/error-handling.htm",
}


class Target:
    """A tiny CRM behind MockTransport: records by URL path, every request logged."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.respond = respond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.respond is not None:
            return self.respond(request)
        path = request.url.raw_path.decode()
        if request.method == "GET":
            if path not in self.records:
                return httpx.Response(404, json={"status": "error", "message": "Not Found"})
            return httpx.Response(200, json=self.records[path])
        body = json.loads(request.content)
        created = path not in self.records
        self.records[path] = {**self.records.get(path, {}), **body}
        return httpx.Response(201 if created else 200, json={"id": "5102", **body})

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


def connection(**kw: Any) -> ConnectionConfig:
    return ConnectionConfig(name="crm", connector="http", base_url=BASE, **kw)


def connector(target: Target, environ: dict[str, str] | None = None, **kw: Any) -> HttpConnector:
    return HttpConnector(connection(**kw), environ or {}, transport=httpx.MockTransport(target))


def record(
    match: str | None = "ada@example.com",
    action: str = "upsert",
    obj: str = "contacts",
    **fields: Any,
) -> MappedRecord:
    results = []
    for name, value in (fields or {"email": match, "firstname": "Ada"}).items():
        owner = "source"
        if isinstance(value, tuple):  # (value, "target") marks a target-owned field
            value, owner = value
        results.append(FieldResult(name=name, source_value=value, value=value, owner=owner))
    return MappedRecord(
        mapping="m",
        connection="crm",
        object=obj,
        action=action,
        match_field="email" if match is not None else None,
        match_value=match,
        fields=tuple(results),
    )


def answering(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> Target:
    def respond(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return Target(respond)


# text UTF-8 cannot encode ---------------------------------------------------------------
@pytest.mark.parametrize(
    "rec",
    [
        record(firstname="Ada \ud800"),
        record(match="ada\ud800@example.com", firstname="Ada"),  # in the URL
    ],
    ids=["body", "url"],
)
def test_text_utf8_cannot_encode_is_a_data_error_of_the_record(rec: MappedRecord) -> None:
    target = Target()
    with pytest.raises(DataError) as info:
        connector(target).deliver(rec)
    assert info.value.category == "mapping"
    assert "cannot be encoded as UTF-8 (\\ud800, a lone surrogate)" in str(info.value)
    str(info.value).encode("utf-8")  # the message itself is storable text
    assert target.requests == []


# the default table ----------------------------------------------------------------------
def test_201_is_created_and_200_updated() -> None:
    target = Target()
    c = connector(target)
    first = c.deliver(record())
    assert (first.operation, first.status, first.record_id) == ("created", 201, "ada@example.com")
    assert json.loads(first.excerpt)["id"] == "5102"
    second = c.deliver(record())
    assert (second.operation, second.status) == ("updated", 200)
    assert target.methods() == ["PUT", "PUT"]  # nothing target-owned: no read needed


def test_the_write_is_a_put_of_the_mapped_fields_with_the_match_field() -> None:
    target = Target()
    connector(target).deliver(record(firstname="Ada", lastname="Lovelace"))
    [request] = target.requests
    assert request.method == "PUT"
    assert str(request.url) == f"{BASE}/contacts/ada%40example.com"
    assert json.loads(request.content) == {
        "email": "ada@example.com",
        "firstname": "Ada",
        "lastname": "Lovelace",
    }
    assert request.headers["content-type"] == "application/json"


def test_a_204_no_content_is_a_successful_write() -> None:
    result = connector(Target(lambda r: httpx.Response(204))).deliver(record())
    assert (result.operation, result.status) == ("updated", 204)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_taken_for_a_successful_write(status: int) -> None:
    # httpx does not follow redirects here, so nothing was written: a moved API (http ->
    # https, a new version path) must not mark deliveries delivered
    target = answering(
        status, text="Moved", headers={"Location": "https://api.crm.example.com/v4/contacts/1"}
    )
    with pytest.raises(DataError) as info:
        connector(target).deliver(record())
    assert info.value.status == status
    assert info.value.category == "rejected_by_target"
    assert "redirect" in str(info.value)
    assert "https://api.crm.example.com/v4/contacts/1" in str(info.value)


@pytest.mark.parametrize(
    "status, body, category",
    [
        (400, HUBSPOT_VALIDATION, "rejected_by_target"),
        (
            404,
            {"status": "error", "message": "Object type contactz not found"},
            "rejected_by_target",
        ),
        (409, HUBSPOT_CONFLICT, "rejected_by_target"),
        (
            422,
            {"errors": [{"field": "phone", "message": "is not a valid phone number"}]},
            "rejected_by_target",
        ),
    ],
)
def test_other_4xx_are_data_errors_with_the_targets_answer(
    status: int, body: Any, category: str
) -> None:
    with pytest.raises(DataError) as info:
        connector(answering(status, body)).deliver(record())
    error = info.value
    assert error.category == category
    assert error.status == status
    assert json.loads(error.excerpt) == body  # what the target said, for the dead letter
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize("status, body", [(401, SALESFORCE_SESSION), (403, SALESFORCE_FORBIDDEN)])
def test_401_and_403_are_auth_errors(status: int, body: Any) -> None:
    with pytest.raises(AuthError) as info:
        connector(answering(status, body)).deliver(record())
    assert info.value.status == status
    assert body[0]["errorCode"] in info.value.excerpt


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_408_and_5xx_are_transient(status: int) -> None:
    with pytest.raises(TransientError) as info:
        connector(answering(status, text="<html><body>upstream error</body></html>")).deliver(
            record()
        )
    error = info.value
    assert not isinstance(error, RateLimited)
    assert error.status == status
    assert error.retry_after is None
    assert "upstream error" in error.excerpt


def test_a_503_with_retry_after_carries_it() -> None:
    with pytest.raises(TransientError) as info:
        connector(answering(503, {"message": "maintenance"}, {"Retry-After": "120"})).deliver(
            record()
        )
    assert info.value.retry_after == 120.0


def test_429_is_rate_limited_with_retry_after_seconds() -> None:
    with pytest.raises(RateLimited) as info:
        connector(answering(429, MARKETING_CLOUD_429, {"Retry-After": "5"})).deliver(record())
    assert info.value.status == 429
    assert info.value.retry_after == 5.0
    assert "Rate limit exceeded" in info.value.excerpt


def test_429_with_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)  # "Sun, 15 Jun 2025 ..."
    with pytest.raises(RateLimited) as info:
        connector(answering(429, {"message": "slow down"}, {"Retry-After": when})).deliver(record())
    assert info.value.retry_after is not None
    assert 117 <= info.value.retry_after <= 120


def test_retry_after_parsing() -> None:
    def parsed(value: str, now: float = 1_750_000_000.0) -> float | None:
        return retry_after_seconds(httpx.Response(503, headers={"Retry-After": value}), now)

    assert parsed("0") == 0.0
    assert parsed(" 30 ") == 30.0
    assert parsed("Sun, 15 Jun 2025 15:07:20 GMT") == 40.0  # now is 15:06:40
    assert parsed("Sun, 15 Jun 2025 14:00:00 GMT") == 0.0  # in the past: now
    assert parsed("soon") is None
    assert parsed("-5") is None
    assert retry_after_seconds(httpx.Response(503)) is None


def test_429_without_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        connector(answering(429, {"message": "You have reached your secondly limit."})).deliver(
            record()
        )
    assert info.value.retry_after is None


def test_excerpts_are_bounded() -> None:
    with pytest.raises(DataError) as info:
        connector(answering(400, text="x" * 5000)).deliver(record())
    assert len(info.value.excerpt) == EXCERPT_CHARS


@pytest.mark.parametrize(
    "exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
def test_timeouts_are_transient(exc: type[httpx.TimeoutException]) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc("timed out", request=request)

    with pytest.raises(TransientError, match="timed out") as info:
        connector(Target(respond)).deliver(record())
    assert info.value.status is None


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError])
def test_connection_failures_are_transient(exc: type[httpx.TransportError]) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc("[Errno 111] Connection refused", request=request)

    with pytest.raises(TransientError, match="Connection refused"):
        connector(Target(respond)).deliver(record())


def test_a_timeout_on_the_read_is_transient_too() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TransientError):
        connector(Target(respond)).deliver(
            record(email="ada@example.com", status=("lead", "target"))
        )


# URLs -----------------------------------------------------------------------------------
def test_the_match_key_is_url_encoded_as_one_path_segment() -> None:
    target = Target()
    c = connector(target)
    c.deliver(record("ada+crm@example.com", email="ada+crm@example.com", status=("lead", "target")))
    c.deliver(record("acme/eu?x=1#frag", obj="companies", name="Acme EU"))
    get, put, put2 = target.requests
    assert get.url.raw_path == b"/api/v3/contacts/ada%2Bcrm%40example.com"
    assert put.url.raw_path == get.url.raw_path
    assert put2.url.raw_path == b"/api/v3/companies/acme%2Feu%3Fx%3D1%23frag"
    assert put2.url.query == b""


def test_paths_and_methods_come_from_the_connection_options() -> None:
    target = Target(lambda r: httpx.Response(200, json={}))
    c = connector(
        target,
        options={
            "path": "/objects/{object}/by-email/{key}",
            "method": "PATCH",
            "create_path": "/objects/{object}",
        },
    )
    c.deliver(record("ada@example.com"))
    c.deliver(record(None, action="create_only", email="bob@example.com"))
    patch, post = target.requests
    assert (patch.method, patch.url.raw_path) == (
        "PATCH",
        b"/api/v3/objects/contacts/by-email/ada%40example.com",
    )
    assert (post.method, post.url.raw_path) == ("POST", b"/api/v3/objects/contacts")
    assert json.loads(post.content) == {"email": "bob@example.com"}


# field ownership ------------------------------------------------------------------------
def owned_record(status: str = "customer") -> MappedRecord:
    return record(email="ada@example.com", firstname="Ada", lifecyclestage=(status, "target"))


def test_a_target_owned_field_is_not_overwritten_when_the_target_has_a_value() -> None:
    target = Target()
    target.records["/api/v3/contacts/ada%40example.com"] = {
        "email": "ada@example.com",
        "lifecyclestage": "opportunity",
    }
    result = connector(target).deliver(owned_record())
    assert target.methods() == ["GET", "PUT"]  # read once, then one write
    body = json.loads(target.requests[1].content)
    assert body == {"email": "ada@example.com", "firstname": "Ada"}
    assert result.skipped_fields == ("lifecyclestage",)
    assert result.written_fields == ("email", "firstname")
    assert target.records["/api/v3/contacts/ada%40example.com"]["lifecyclestage"] == "opportunity"


@pytest.mark.parametrize(
    "existing",
    [
        {"lifecyclestage": ""},
        {"lifecyclestage": None},
        {"lifecyclestage": "   "},
        {"lifecyclestage": []},
        {"lifecyclestage": {}},
        {},
    ],
)
def test_a_target_owned_field_is_written_where_the_target_value_is_empty(
    existing: dict[str, Any],
) -> None:
    target = Target()
    target.records["/api/v3/contacts/ada%40example.com"] = {"email": "ada@example.com", **existing}
    result = connector(target).deliver(owned_record())
    assert json.loads(target.requests[1].content)["lifecyclestage"] == "customer"
    assert result.skipped_fields == ()
    assert result.operation == "updated"


def test_a_target_owned_field_is_written_when_the_record_is_new() -> None:
    target = Target()
    result = connector(target).deliver(owned_record())
    assert target.methods() == ["GET", "PUT"]
    assert json.loads(target.requests[1].content)["lifecyclestage"] == "customer"
    assert result.operation == "created" and result.skipped_fields == ()


def test_update_only_skips_a_record_the_target_does_not_have() -> None:
    target = Target()
    result = connector(target).deliver(record(action="update_only"))
    assert target.methods() == ["GET"]
    assert result.operation == "skipped"
    assert set(result.skipped_fields) == {"email", "firstname"}


def test_update_only_updates_a_record_the_target_has() -> None:
    target = Target()
    target.records["/api/v3/contacts/ada%40example.com"] = {"email": "ada@example.com"}
    result = connector(target).deliver(record(action="update_only"))
    assert target.methods() == ["GET", "PUT"]
    assert result.operation == "updated"


def test_a_failed_read_is_classified_like_a_write() -> None:
    with pytest.raises(AuthError):
        connector(answering(401, SALESFORCE_SESSION)).deliver(owned_record())


# auth -----------------------------------------------------------------------------------
def sent_headers(auth: dict[str, str], environ: dict[str, str]) -> httpx.Headers:
    target = Target()
    connector(target, environ, auth=auth).deliver(record())
    return target.requests[0].headers


def test_bearer_auth_reads_the_token_from_the_environment() -> None:
    headers = sent_headers(
        {"type": "bearer", "token_env": "CRM_TOKEN"}, {"CRM_TOKEN": "pat-na1-11111111-2222"}
    )
    assert headers["authorization"] == "Bearer pat-na1-11111111-2222"
    assert headers["user-agent"].startswith("crmhub/")


def test_basic_auth_encodes_user_and_password_from_the_environment() -> None:
    headers = sent_headers(
        {"type": "basic", "username_env": "CRM_USER", "password_env": "CRM_PASS"},
        {"CRM_USER": "integration@acme.com", "CRM_PASS": "s3cr:et"},
    )
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == "integration@acme.com:s3cr:et"


def test_header_auth_sends_the_named_header() -> None:
    headers = sent_headers(
        {"type": "header", "header": "X-Api-Key", "value_env": "CRM_KEY"}, {"CRM_KEY": "key-123"}
    )
    assert headers["x-api-key"] == "key-123"
    assert "authorization" not in headers


def test_no_auth_sends_no_credentials() -> None:
    headers = sent_headers({"type": "none"}, {"CRM_TOKEN": "unused"})
    assert "authorization" not in headers
