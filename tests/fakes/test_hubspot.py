"""The fake HubSpot (connectors/fakes/hubspot/), run as a real subprocess and spoken to over
loopback with httpx (and, through the `client` fixture, also in-process behind FakeTransport):
OAuth refresh and expiry, HubSpot's error bodies, batch upsert/read, property validation, rate
limits and their headers, schema violations, faults and the control API.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from processes import start_fake, stop_fake

from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.transport import FakeTransport

pytestmark = pytest.mark.integration

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "test-refresh-token"
PRIVATE_APP = "pat-na1-test"
JSON_TYPE = "application/json;charset=utf-8"
AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
BASE_ARGS = (
    "--client-id",
    CLIENT_ID,
    "--client-secret",
    CLIENT_SECRET,
    "--refresh-token",
    REFRESH_TOKEN,
    "--private-app-token",
    PRIVATE_APP,
)

Json = dict[str, Any]


def start_hubspot(*args: str) -> tuple[subprocess.Popen[str], str]:
    return start_fake("hubspot", "fake hubspot listening on", *args)


@contextmanager
def run_fake(*args: str) -> Iterator[str]:
    proc, url = start_hubspot(*args)
    try:
        yield url
    finally:
        stop_fake(proc)


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    with run_fake(*BASE_ARGS) as url:
        yield url


@pytest.fixture(params=["loopback", "in-process"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """The fake over HTTP (its own process), and the same fake in-process behind
    FakeTransport: every test below holds for both."""
    if request.param == "loopback":
        c = httpx.Client(base_url=request.getfixturevalue("fake_url"), timeout=10.0)
    else:
        fake = FakeHubSpot(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,
            private_app_token=PRIVATE_APP,
        )
        c = httpx.Client(transport=FakeTransport(fake), base_url="http://fake-hubspot.test")
    with c:
        assert c.post("/_control/reset").status_code == 200
        yield c


def refresh(
    client: httpx.Client, refresh_token: str = REFRESH_TOKEN, **override: str
) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        **override,
    }
    return client.post("/oauth/v1/token", data=form)


def access_token(client: httpx.Client) -> str:
    response = refresh(client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str = PRIVATE_APP) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_contact(client: httpx.Client, **properties: str) -> httpx.Response:
    return client.post(
        "/crm/v3/objects/contacts", json={"properties": properties}, headers=bearer()
    )


def upsert(client: httpx.Client, obj: str, inputs: list[Json]) -> httpx.Response:
    return client.post(
        f"/crm/v3/objects/{obj}/batch/upsert", json={"inputs": inputs}, headers=bearer()
    )


def violations(client: httpx.Client) -> list[Json]:
    body: Json = client.get("/_control/violations").json()
    assert body["count"] == len(body["violations"])
    result: list[Json] = body["violations"]
    return result


def set_limits(client: httpx.Client, **limits: int) -> None:
    assert client.post("/_control/limits", json=limits).status_code == 200


def add_fault(client: httpx.Client, **spec: Any) -> Json:
    response = client.post("/_control/faults", json=spec)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def assert_error_keys(body: Json, *keys: str) -> None:
    assert list(body) == ["status", "message", "correlationId", *keys]
    assert body["status"] == "error"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["correlationId"])


# --- OAuth ------------------------------------------------------------------------------------


def test_refresh_issues_a_bearer_token_the_crm_accepts(client: httpx.Client) -> None:
    response = refresh(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert list(body) == ["token_type", "refresh_token", "access_token", "expires_in"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert body["refresh_token"] == REFRESH_TOKEN  # not rotated by default
    created = client.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "ada@example.com"}},
        headers=bearer(body["access_token"]),
    )
    assert created.status_code == 201
    # OAuth calls carry no daily-limit headers (HubSpot changelog), the 10-second ones they do.
    assert "X-HubSpot-RateLimit-Daily" not in created.headers
    assert created.headers["X-HubSpot-RateLimit-Max"] == "190"
    stats = client.get("/_control/stats").json()
    assert stats["token_refreshes"] == 1
    assert stats["by_endpoint"]["oauth.token"] == 1


def test_token_endpoint_errors_are_hubspot_shaped(client: httpx.Client) -> None:
    cases = {
        "BAD_CLIENT_ID": refresh(client, client_id="someone-else"),
        "BAD_CLIENT_SECRET": refresh(client, client_secret="wrong"),
        "BAD_GRANT_TYPE": refresh(client, grant_type="password"),
        "BAD_REFRESH_TOKEN": refresh(client, "not-a-token"),
    }
    for status, response in cases.items():
        assert response.status_code == 400
        body = response.json()
        assert list(body) == ["status", "message", "correlationId", "requestId"]
        assert body["status"] == status
    assert cases["BAD_REFRESH_TOKEN"].json()["message"] == "missing or unknown refresh token"
    assert cases["BAD_CLIENT_ID"].json()["message"] == "missing or unknown client id"
    # grant_type=password is outside the spec's enum: a violation as well as a 400.
    assert [v["endpoint"] for v in violations(client)] == ["oauth.token"]

    as_json = client.post(
        "/oauth/v1/token",
        json={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "refresh_token": REFRESH_TOKEN,
        },
    )
    assert as_json.status_code == 415
    recorded = violations(client)[-1]
    assert recorded["problems"][0]["problem"] == "content-type"


def test_access_token_expires_after_its_ttl(client: httpx.Client) -> None:
    set_limits(client, token_ttl=1)
    body = refresh(client).json()
    assert body["expires_in"] == 1
    token = body["access_token"]
    assert client.get("/crm/v3/objects/contacts", headers=bearer(token)).status_code == 200
    time.sleep(1.3)
    expired = client.get("/crm/v3/objects/contacts", headers=bearer(token))
    assert expired.status_code == 401
    error = expired.json()
    assert_error_keys(error, "context", "category")
    assert error["category"] == "EXPIRED_AUTHENTICATION"
    assert re.fullmatch(
        r"The OAuth token used to make this call expired \d+ second\(s\) ago\.", error["message"]
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", error["context"]["expire time"][0]
    )
    assert "X-HubSpot-RateLimit-Max" not in expired.headers
    fresh = access_token(client)
    assert client.get("/crm/v3/objects/contacts", headers=bearer(fresh)).status_code == 200


def test_expire_tokens_fault_expires_every_issued_access_token(client: httpx.Client) -> None:
    first, second = access_token(client), access_token(client)
    applied = add_fault(client, mode="expire_tokens")
    # Tokens issued before the last reset count too: a reset leaves issued tokens alone.
    [result] = applied["applied"]
    assert result["mode"] == "expire_tokens"
    assert result["expired"] >= 2
    assert applied["faults"] == []
    for token in (first, second):
        response = client.get("/crm/v3/objects/contacts", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["category"] == "EXPIRED_AUTHENTICATION"
    # A private-app token never expires; a new refresh gives a working token again.
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200
    assert (
        client.get("/crm/v3/objects/contacts", headers=bearer(access_token(client))).status_code
        == 200
    )


def test_missing_or_unknown_token_is_invalid_authentication(client: httpx.Client) -> None:
    for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic abc"}):
        response = client.get("/crm/v3/objects/contacts", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert_error_keys(body, "category")
        assert body == {**body, "message": AUTH_NOT_FOUND, "category": "INVALID_AUTHENTICATION"}
    assert client.get("/_control/stats").json()["api_calls"] == 0


def test_revoked_refresh_token_until_reauthorised(client: httpx.Client) -> None:
    token = access_token(client)
    applied = add_fault(client, mode="revoke_refresh_token")
    assert applied["applied"] == [{"mode": "revoke_refresh_token", "revoked": 1}]
    revoked = refresh(client)
    assert revoked.status_code == 400
    assert revoked.json()["status"] == "BAD_REFRESH_TOKEN"
    # Access tokens already issued keep working until they expire.
    assert client.get("/crm/v3/objects/contacts", headers=bearer(token)).status_code == 200
    assert client.post(
        "/_control/refresh-token", json={"refresh_token": "after-reauth"}
    ).json() == {"refresh_token": "after-reauth"}
    assert refresh(client, "after-reauth").status_code == 200
    assert refresh(client).status_code == 400
    generated = client.post("/_control/refresh-token", json={}).json()["refresh_token"]
    assert refresh(client, generated).status_code == 200
    assert client.get("/_control/auth").json()["refresh_tokens"] == [generated]


def test_rotating_refresh_tokens() -> None:
    with run_fake(*BASE_ARGS, "--rotate-refresh-tokens") as url, httpx.Client(base_url=url) as c:
        first = refresh(c).json()
        assert first["refresh_token"] != REFRESH_TOKEN
        assert refresh(c).json()["status"] == "BAD_REFRESH_TOKEN"
        second = refresh(c, first["refresh_token"]).json()
        assert second["refresh_token"] not in (REFRESH_TOKEN, first["refresh_token"])
        assert refresh(c, first["refresh_token"]).status_code == 400
        assert refresh(c, second["refresh_token"]).status_code == 200


# --- objects ----------------------------------------------------------------------------------


def test_create_then_duplicate_email_is_409_with_existing_id(client: httpx.Client) -> None:
    created = create_contact(client, email="Ada@Example.COM", firstname="Ada")
    assert created.status_code == 201
    assert created.headers["content-type"] == JSON_TYPE
    contact = created.json()
    assert contact["id"].isdigit()
    assert created.headers["location"].endswith(f"/crm/v3/objects/contacts/{contact['id']}")
    assert contact["properties"]["email"] == "ada@example.com"
    assert contact["properties"]["hs_object_id"] == contact["id"]
    assert contact["archived"] is False
    assert all(isinstance(v, str) for v in contact["properties"].values())

    duplicate = create_contact(client, email="ada@example.com")
    assert duplicate.status_code == 409
    body = duplicate.json()
    assert_error_keys(body, "category")
    assert body["message"] == f"Contact already exists. Existing ID: {contact['id']}"
    assert body["category"] == "CONFLICT"
    assert duplicate.headers["x-hubspot-correlation-id"] == body["correlationId"]
    assert (
        len(client.get("/_control/records", params={"object": "contacts"}).json()["records"]) == 1
    )


def test_get_and_patch_by_id_or_email(client: httpx.Client) -> None:
    contact_id = create_contact(client, email="ada@example.com", firstname="Ada").json()["id"]
    by_email = client.get(
        "/crm/v3/objects/contacts/ADA@example.com",
        params={"idProperty": "email", "properties": "firstname,jobtitle"},
        headers=bearer(),
    )
    assert by_email.status_code == 200
    props = by_email.json()["properties"]
    assert set(props) == {"firstname", "jobtitle", "hs_object_id", "createdate", "lastmodifieddate"}
    assert props["firstname"] == "Ada"
    assert props["jobtitle"] is None
    default = client.get(f"/crm/v3/objects/contacts/{contact_id}", headers=bearer()).json()
    assert set(default["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }

    missing = client.get("/crm/v3/objects/contacts/999999", headers=bearer())
    assert missing.status_code == 404
    assert missing.json()["message"] == "resource not found"
    no_id_property = client.get("/crm/v3/objects/contacts/ada@example.com", headers=bearer())
    assert no_id_property.status_code == 404
    assert no_id_property.json()["category"] == "OBJECT_NOT_FOUND"

    patched = client.patch(
        "/crm/v3/objects/contacts/ada@example.com?idProperty=email",
        json={"properties": {"lastname": "Lovelace", "lifecyclestage": "customer"}},
        headers=bearer(),
    )
    assert patched.status_code == 200
    assert patched.json()["properties"]["lastname"] == "Lovelace"
    assert patched.json()["properties"]["lifecyclestage"] == "customer"
    assert violations(client) == []


def test_batch_upsert_creates_then_updates_by_email_case_insensitively(
    client: httpx.Client,
) -> None:
    first = upsert(
        client,
        "contacts",
        [{"idProperty": "email", "id": "ada@example.com", "properties": {"firstname": "Ada"}}],
    )
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt"} <= set(body)
    [created] = body["results"]
    assert created["new"] is True
    assert created["properties"]["email"] == "ada@example.com"

    second = upsert(
        client,
        "contacts",
        [
            {
                "idProperty": "email",
                "id": "ADA@Example.com",
                "properties": {"lastname": "Lovelace"},
            },
            {"idProperty": "email", "id": "bob@example.com", "properties": {"firstname": 7}},
        ],
    )
    assert second.status_code == 200
    ada, bob = second.json()["results"]
    assert (ada["id"], ada["new"]) == (created["id"], False)
    assert ada["properties"]["firstname"] == "Ada"
    assert ada["properties"]["lastname"] == "Lovelace"
    assert bob["new"] is True
    assert bob["properties"]["firstname"] == "7"  # numbers are stored as strings
    records = client.get("/_control/records?object=contacts").json()["records"]
    assert sorted(r["properties"]["email"] for r in records) == [
        "ada@example.com",
        "bob@example.com",
    ]
    assert violations(client) == []


def test_batch_upsert_partial_failure_is_207_only_with_trace_ids(client: httpx.Client) -> None:
    inputs = [
        {"idProperty": "email", "id": "ok@example.com", "properties": {"firstname": "Ok"}},
        {"idProperty": "email", "id": "bad@example.com", "properties": {"lifecyclestage": "nope"}},
    ]
    whole = upsert(client, "contacts", inputs)
    assert whole.status_code == 400
    assert whole.json()["category"] == "VALIDATION_ERROR"
    assert client.get("/_control/stats").json()["records"]["contacts"] == 0

    traced = [{**item, "objectWriteTraceId": f"trace-{i}"} for i, item in enumerate(inputs)]
    partial = upsert(client, "contacts", traced)
    assert partial.status_code == 207
    body = partial.json()
    assert [r["properties"]["email"] for r in body["results"]] == ["ok@example.com"]
    assert body["results"][0]["objectWriteTraceId"] == "trace-0"
    assert body["numErrors"] == 1
    [error] = body["errors"]
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"objectWriteTraceId": ["trace-1"]}
    assert error["errors"][0]["code"] == "INVALID_OPTION"


def test_batch_read_reports_missing_ids_with_207(client: httpx.Client) -> None:
    ada = create_contact(client, email="ada@example.com", lastname="Lovelace").json()["id"]
    by_email = client.post(
        "/crm/v3/objects/contacts/batch/read",
        json={
            "idProperty": "email",
            "inputs": [{"id": "ADA@example.com"}, {"id": "ghost@example.com"}],
            "properties": ["lastname"],
        },
        headers=bearer(),
    )
    assert by_email.status_code == 207
    body = by_email.json()
    assert [r["id"] for r in body["results"]] == [ada]
    assert body["results"][0]["properties"]["lastname"] == "Lovelace"
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": ["ghost@example.com"]},
        }
    ]
    by_id = client.post(
        "/crm/v3/objects/contacts/batch/read",
        json={"inputs": [{"id": ada}], "properties": ["email"]},
        headers=bearer(),
    )
    assert by_id.status_code == 200
    assert by_id.json()["results"][0]["properties"]["email"] == "ada@example.com"


def test_property_validation_errors_are_hubspot_shaped(client: httpx.Client) -> None:
    response = create_contact(
        client,
        email="ada@example.com",
        favourite_colour="blue",
        date_of_birth="1579179660000",
        lifecyclestage="superfan",
    )
    assert response.status_code == 400
    body = response.json()
    assert_error_keys(body, "errors", "category")
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    listed = json.loads(body["message"].split(": ", 1)[1])
    assert [item["error"] for item in listed] == [
        "PROPERTY_DOESNT_EXIST",
        "INVALID_DATE",
        "INVALID_OPTION",
    ]
    assert all(item["isValid"] is False for item in listed)
    codes = {e["code"]: e for e in body["errors"]}
    assert codes["PROPERTY_DOESNT_EXIST"] == {
        "message": 'Property "favourite_colour" does not exist',
        "code": "PROPERTY_DOESNT_EXIST",
        "context": {"propertyName": ["favourite_colour"]},
    }
    assert codes["INVALID_DATE"]["message"] == "1579179660000 is at 13:1:0.0 UTC, not midnight!"
    assert codes["INVALID_OPTION"]["message"].startswith(
        "superfan was not one of the allowed options: ["
    )
    assert client.get("/_control/stats").json()["records"]["contacts"] == 0
    # A value error is HubSpot refusing data, not the client breaking the contract.
    assert violations(client) == []

    ok = create_contact(client, email="ada@example.com", date_of_birth="1579132800000")
    assert ok.status_code == 201
    assert ok.json()["properties"]["date_of_birth"] == "1579132800000"


def test_search_by_email_eq(client: httpx.Client) -> None:
    for email in ("ada@example.com", "bob@example.com"):
        create_contact(client, email=email)
    response = client.post(
        "/crm/v3/objects/contacts/search",
        json={
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "email", "operator": "EQ", "value": "BOB@example.com"}
                    ]
                }
            ],
            "properties": ["email"],
            "limit": 10,
        },
        headers=bearer(),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert body["results"][0]["properties"]["email"] == "bob@example.com"
    everyone = client.post(
        "/crm/v3/objects/contacts/search", json={"limit": 1}, headers=bearer()
    ).json()
    assert everyone["total"] == 2
    assert everyone["paging"] == {"next": {"after": "1"}}


def test_batch_create_conflict_and_batch_update_missing(client: httpx.Client) -> None:
    created = client.post(
        "/crm/v3/objects/contacts/batch/create",
        json={
            "inputs": [
                {"properties": {"email": "ada@example.com"}},
                {"properties": {"email": "b@x.io"}},
            ]
        },
        headers=bearer(),
    )
    assert created.status_code == 201
    ada_id = created.json()["results"][0]["id"]
    again = client.post(
        "/crm/v3/objects/contacts/batch/create",
        json={"inputs": [{"properties": {"email": "ADA@example.com"}}]},
        headers=bearer(),
    )
    assert again.status_code == 409
    assert again.json()["message"] == f"Contact already exists. Existing ID: {ada_id}"
    updated = client.post(
        "/crm/v3/objects/contacts/batch/update",
        json={
            "inputs": [
                {"id": ada_id, "properties": {"firstname": "Ada"}},
                {"id": "424242", "properties": {}},
            ]
        },
        headers=bearer(),
    )
    assert updated.status_code == 207
    assert updated.json()["results"][0]["properties"]["firstname"] == "Ada"
    assert updated.json()["errors"][0]["context"] == {"ids": ["424242"]}


def test_companies_upsert_by_a_unique_custom_property(client: httpx.Client) -> None:
    response = upsert(
        client,
        "companies",
        [
            {
                "idProperty": "crmhub_external_id",
                "id": "acme-1",
                "properties": {"name": "Acme", "domain": "acme.io"},
            }
        ],
    )
    assert response.status_code == 200
    [company] = response.json()["results"]
    assert company["new"] is True
    assert company["properties"]["crmhub_external_id"] == "acme-1"
    fetched = client.get(f"/crm/v3/objects/companies/{company['id']}", headers=bearer()).json()
    assert set(fetched["properties"]) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }
    not_unique = upsert(
        client, "companies", [{"idProperty": "name", "id": "Acme", "properties": {}}]
    )
    assert not_unique.status_code == 400
    assert violations(client)[-1]["problems"][0]["problem"] == "not a unique property"


# --- rate limits ------------------------------------------------------------------------------


def test_ten_secondly_limit_answers_429_and_headers_count_down(client: httpx.Client) -> None:
    set_limits(client, ten_secondly=5)
    remaining = []
    for _ in range(5):
        response = client.get("/crm/v3/objects/contacts", headers=bearer())
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "5"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    limited = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert limited.status_code == 429
    body = limited.json()
    assert list(body) == [
        "status",
        "message",
        "errorType",
        "correlationId",
        "policyName",
        "groupName",
    ]
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert (body["status"], body["errorType"], body["policyName"]) == (
        "error",
        "RATE_LIMIT",
        "TEN_SECONDLY_ROLLING",
    )
    assert "Retry-After" not in limited.headers
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    # Search has its own limit and does not use the ten-secondly window.
    search = client.post("/crm/v3/objects/contacts/search", json={}, headers=bearer())
    assert search.status_code == 200
    stats = client.get("/_control/stats").json()
    assert stats["rate_limited"] == {"TEN_SECONDLY_ROLLING": 1}
    assert stats["api_calls"] == 6


def test_daily_limit_applies_to_private_app_tokens(client: httpx.Client) -> None:
    set_limits(client, daily=2)
    first = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    second = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert second.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    third = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert third.status_code == 429
    assert third.json()["policyName"] == "DAILY"
    assert third.json()["message"] == "You have reached your daily limit."


def test_rate_limit_faults(client: httpx.Client) -> None:
    add_fault(client, mode="rate_limit_burst", count=2)
    statuses = [
        client.get("/crm/v3/objects/contacts", headers=bearer()).status_code for _ in range(3)
    ]
    assert statuses == [429, 429, 200]
    add_fault(client, mode="rate_limit_daily", seconds=0.5, retry_after=1)
    daily = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert daily.status_code == 429
    assert daily.json()["policyName"] == "DAILY"
    assert daily.headers["Retry-After"] == "1"
    time.sleep(0.6)
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200
    assert client.get("/_control/stats").json()["faults_applied"] == {
        "rate_limit_burst": 2,
        "rate_limit_daily": 1,
    }


# --- schema violations -------------------------------------------------------------------------


def test_schema_violations_are_answered_and_recorded(client: httpx.Client) -> None:
    ok = upsert(client, "contacts", [{"idProperty": "email", "id": "a@b.io", "properties": {}}])
    assert ok.status_code == 200
    assert violations(client) == []

    too_many = upsert(
        client,
        "contacts",
        [{"idProperty": "email", "id": f"u{i}@b.io", "properties": {}} for i in range(101)],
    )
    assert too_many.status_code == 400
    assert too_many.json()["message"].startswith(
        "The maximum number of inputs supported in a batch request is 100."
    )
    no_inputs = client.post(
        "/crm/v3/objects/contacts/batch/read", json={"properties": ["email"]}, headers=bearer()
    )
    assert no_inputs.status_code == 400
    assert no_inputs.json()["message"] == (
        "Invalid input JSON on line 1, column 2. Some required fields were not set: [inputs]"
    )
    no_id_property = upsert(client, "contacts", [{"id": "a@b.io", "properties": {}}])
    assert no_id_property.status_code == 400
    assert "Some required fields were not set: [idProperty]" in no_id_property.json()["message"]
    wrong_type = client.post(
        "/crm/v3/objects/contacts", json={"properties": ["email"]}, headers=bearer()
    )
    assert wrong_type.status_code == 400
    assert "Cannot deserialize value of type" in wrong_type.json()["message"]
    not_json = client.post(
        "/crm/v3/objects/contacts",
        content=b"{nope",
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("Invalid input JSON on line 1, column 2:")
    form = client.post("/crm/v3/objects/contacts", data={"email": "x"}, headers=bearer())
    assert form.status_code == 415
    duplicates = upsert(
        client,
        "contacts",
        [
            {"idProperty": "email", "id": "a@b.io", "properties": {}},
            {"idProperty": "email", "id": "A@B.io", "properties": {}},
        ],
    )
    assert duplicates.status_code == 400
    assert duplicates.json()["message"] == (
        "Duplicate IDs found in batch input: [a@b.io]. IDs must be unique"
    )
    unknown_object = client.get("/crm/v3/objects/widgets", headers=bearer())
    assert unknown_object.status_code == 400

    recorded = violations(client)
    assert [v["status"] for v in recorded] == [400, 400, 400, 400, 400, 415, 400, 400]
    assert recorded[0]["problems"] == [
        {"path": "$.inputs", "problem": "too many inputs", "count": 101, "max": 100}
    ]
    assert recorded[1]["problems"] == [{"path": "$", "problem": "required", "fields": ["inputs"]}]
    assert recorded[2]["problems"] == [
        {"path": "$.inputs[0]", "problem": "required", "fields": ["idProperty"]}
    ]
    assert {v["endpoint"] for v in recorded} == {
        "contacts.batch_upsert",
        "contacts.batch_read",
        "contacts.create",
        "crm.unknown_object",
    }
    assert client.get("/_control/stats").json()["violations"] == 8


# --- faults and control ------------------------------------------------------------------------


def test_error_latency_and_drop_faults(client: httpx.Client) -> None:
    add_fault(client, mode="error5xx", count=1, status=503)
    failed = client.get("/crm/v3/objects/contacts", headers=bearer())
    assert failed.status_code == 503
    assert failed.json()["status"] == "error"
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200
    # Faults leave the token endpoint alone unless asked, and never touch the control API.
    add_fault(client, mode="error5xx", seconds=5)
    assert refresh(client).status_code == 200
    assert client.get("/_control/health").json() == {"ok": True}
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 500
    client.delete("/_control/faults")
    add_fault(client, mode="error5xx", count=1, endpoints=["oauth.token"])
    assert refresh(client).status_code == 500

    add_fault(client, mode="latency", count=1, latency_ms=200)
    started = time.monotonic()
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200
    assert time.monotonic() - started >= 0.2

    add_fault(client, mode="error5xx", ratio=0.5, seed=7, objects=["companies"])
    statuses = [
        client.get("/crm/v3/objects/companies", headers=bearer()).status_code for _ in range(20)
    ]
    assert 0 < statuses.count(500) < 20
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200
    client.delete("/_control/faults")

    add_fault(client, mode="drop", count=1)
    with pytest.raises(httpx.TransportError):
        client.get("/crm/v3/objects/contacts", headers=bearer())
    assert client.get("/crm/v3/objects/contacts", headers=bearer()).status_code == 200

    bad = client.post("/_control/faults", json={"mode": "explode"})
    assert bad.status_code == 400


def test_log_stats_records_and_reset(client: httpx.Client) -> None:
    create_contact(client, email="ada@example.com")
    refresh(client)
    entries = client.get("/_control/log").json()["entries"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/crm/v3/objects/contacts", 201),
        ("POST", "/oauth/v1/token", 200),
    ]
    assert entries[0]["body"] == {"properties": {"email": "ada@example.com"}}
    assert entries[0]["auth"] == "private_app"
    assert entries[1]["body"]["client_secret"] == "[redacted]"
    stats = client.get("/_control/stats").json()
    assert stats["by_endpoint"] == {"contacts.create": 1, "oauth.token": 1}
    assert stats["api_calls"] == 1
    assert stats["records"] == {"contacts": 1, "companies": 0, "deals": 0}
    [record] = client.get("/_control/records").json()["records"]
    assert record["object"] == "contacts"
    assert client.post("/_control/reset").json()["ok"] is True
    assert client.get("/_control/records").json()["records"] == []
    assert client.get("/_control/log").json()["entries"] == []


def test_keep_alive_throughput(client: httpx.Client) -> None:
    set_limits(client, ten_secondly=0)
    started = time.monotonic()
    for i in range(300):
        response = upsert(
            client, "contacts", [{"idProperty": "email", "id": f"p{i}@x.io", "properties": {}}]
        )
        assert response.status_code == 200
    elapsed = time.monotonic() - started
    assert elapsed < 6.0, f"300 upserts took {elapsed:.2f}s"
    assert response.http_version == "HTTP/1.1"


def test_sigterm_exits_zero() -> None:
    proc, url = start_hubspot()
    assert httpx.get(f"{url}/_control/health").status_code == 200
    assert stop_fake(proc) == 0
