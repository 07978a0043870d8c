"""The fake Zoho CRM (connectors/fakes/zoho/), run as a real subprocess and spoken to over
loopback (and, through the `client` fixture, also in-process behind FakeTransport): the
accounts server's HTTP-200 refusals, Zoho's error bodies, layout-checked writes with results
per record, search with escaped criteria, the OpenAPI check of every request, credits and
faults."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest
from processes import start_fake, stop_fake

from connectors.fakes.transport import FakeTransport
from connectors.fakes.zoho import FakeZoho
from connectors.fakes.zoho.records import parse_criteria

pytestmark = pytest.mark.integration

FORM = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc: subprocess.Popen[str]
    proc, url = start_fake(
        "zoho",
        "fake zoho listening on",
        "--client-id",
        "cid",
        "--client-secret",
        "csecret",
        "--refresh-token",
        "r1",
    )
    try:
        yield url
    finally:
        stop_fake(proc)


@pytest.fixture(params=["loopback", "in-process"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    if request.param == "loopback":
        c = httpx.Client(base_url=request.getfixturevalue("server"), timeout=10.0)
    else:
        fake = FakeZoho(client_id="cid", client_secret="csecret", refresh_token="r1")
        c = httpx.Client(
            base_url="https://accounts.zoho.eu", transport=FakeTransport(fake), timeout=10.0
        )
    c.post("/_control/reset")
    token = c.post("/oauth/v2/token", data={**FORM, "refresh_token": "r1"}).json()
    c.headers["Authorization"] = f"Zoho-oauthtoken {token['access_token']}"
    yield c
    c.close()


def violations(client: httpx.Client) -> list[str]:
    return [v["problem"] for v in client.get("/_control/violations").json()["violations"]]


def test_the_token_answer_names_the_api_domain_and_refusals_are_http_200(
    client: httpx.Client,
) -> None:
    good = client.post("/oauth/v2/token", data={**FORM, "refresh_token": "r1"}).json()
    assert good["expires_in"] == 3600 and good["api_domain"].startswith("http")
    assert good["token_type"] == "Bearer" and good["access_token"].startswith("1000.")
    for form, error in [
        ({**FORM, "refresh_token": "nope"}, "invalid_code"),
        ({**FORM, "client_id": "other", "refresh_token": "r1"}, "invalid_client"),
    ]:
        refused = client.post("/oauth/v2/token", data=form)
        assert (refused.status_code, refused.json()) == (200, {"error": error})


def test_a_missing_or_wrong_scheme_token_is_invalid_token(client: httpx.Client) -> None:
    token = client.headers["Authorization"].split(" ", 1)[1]
    for header in ("", f"Bearer {token}", "Zoho-oauthtoken 1000.unknown"):
        answer = client.get(
            "/crm/v8/Contacts/search",
            params={"criteria": "(Email:equals:a@x.com)"},
            headers={"Authorization": header},
        )
        assert answer.status_code == 401
        assert answer.json() == {
            "code": "INVALID_TOKEN",
            "details": {},
            "message": "invalid oauth token",
            "status": "error",
        }


def test_an_upsert_answers_per_record_and_updates_on_the_duplicate_check(
    client: httpx.Client,
) -> None:
    first = client.post(
        "/crm/v8/Contacts/upsert",
        json={
            "data": [{"Email": "Ada@X.com", "Last_Name": "L"}],
            "duplicate_check_fields": ["Email"],
        },
    )
    assert first.status_code == 200
    [made] = first.json()["data"]
    assert (made["code"], made["action"], made["message"]) == ("SUCCESS", "insert", "record added")
    mixed = client.post(
        "/crm/v8/Contacts/upsert",
        json={
            "data": [
                {"Email": "ADA@x.com", "Last_Name": "New"},
                {"Email": "bad", "Last_Name": "B"},
                {"Email": "c@x.com"},
            ],
            "duplicate_check_fields": ["Email"],
        },
    )
    assert mixed.status_code == 207
    updated, bad, missing = mixed.json()["data"]
    assert (updated["action"], updated["duplicate_field"]) == ("update", "Email")
    assert updated["details"]["id"] == made["details"]["id"]
    assert bad == {
        "code": "INVALID_DATA",
        "details": {
            "expected_data_type": "email",
            "api_name": "Email",
            "json_path": "$.data[1].Email",
        },
        "message": "invalid data",
        "status": "error",
    }
    assert missing["code"] == "MANDATORY_NOT_FOUND"
    assert missing["details"]["api_name"] == "Last_Name"
    assert violations(client) == []


def test_every_request_is_checked_against_zohos_openapi_documents(client: httpx.Client) -> None:
    client.post("/crm/v8/Contacts/upsert", json={"data": {"Email": "a@x.com"}})
    client.get("/crm/v8/Contacts/search", params={"criteria": "(Email:equals:a)", "limit": 3})
    client.post("/crm/v8/Contacts/upsert", json={"data": [{"Email": "a@x.com", "Nope": 1}]})
    found = violations(client)
    assert any("$.data: expected array" in v for v in found)
    assert any("'limit' is not one Zoho declares" in v for v in found)
    assert any("Contacts.Nope" in v for v in found)


def test_search_reads_escaped_criteria_and_answers_204_when_nothing_matches(
    client: httpx.Client,
) -> None:
    client.post("/crm/v8/Accounts/upsert", json={"data": [{"Account_Name": "Acme (UK), Ltd"}]})
    found = client.get(
        "/crm/v8/Accounts/search",
        params={"criteria": r"((Account_Name:equals:acme \(UK\)\, ltd)or(Account_Name:equals:X))"},
    )
    assert found.status_code == 200
    assert [r["Account_Name"] for r in found.json()["data"]] == ["Acme (UK), Ltd"]
    assert found.json()["info"]["more_records"] is False
    none = client.get("/crm/v8/Accounts/search", params={"criteria": "(Account_Name:equals:Z)"})
    assert (none.status_code, none.content) == (204, b"")


def test_parse_criteria_keeps_escaped_separators_in_values() -> None:
    assert parse_criteria(r"((Email:equals:a\,b)or(Email:equals:c\)d))") == (
        "or",
        [("Email", "equals", "a,b"), ("Email", "equals", "c)d")],
    )


def test_unknown_modules_and_urls_answer_zohos_errors(client: httpx.Client) -> None:
    module = client.post("/crm/v8/Deals/upsert", json={"data": [{"Deal_Name": "x"}]})
    assert module.status_code == 400 and module.json()["code"] == "INVALID_MODULE"
    url = client.post("/crm/v8/Contacts/nothing/here", json={"data": []})
    assert url.status_code == 404 and url.json()["code"] == "INVALID_URL_PATTERN"


def test_rate_limit_faults_with_and_without_retry_after(client: httpx.Client) -> None:
    client.post(
        "/_control/faults",
        json=[
            {"mode": "rate_limit", "count": 1, "retry_after": 7},
            {"mode": "rate_limit", "count": 1},
        ],
    )
    body = {"data": [{"Email": "a@x.com", "Last_Name": "L"}]}
    hinted = client.post("/crm/v8/Contacts/upsert", json=body)
    assert hinted.status_code == 429 and hinted.headers["Retry-After"] == "7"
    assert hinted.json()["details"]["retry_after"] == 7
    bare = client.post("/crm/v8/Contacts/upsert", json=body)
    assert bare.status_code == 429 and "Retry-After" not in bare.headers
    assert bare.json()["code"] == "TOO_MANY_REQUESTS"
    assert client.post("/crm/v8/Contacts/upsert", json=body).status_code == 200


def test_used_up_credits_answer_limit_exceeded_until_they_come_back(client: httpx.Client) -> None:
    body = {"data": [{"Email": "a@x.com", "Last_Name": "L"}]}
    assert client.post("/crm/v8/Contacts/upsert", json=body).status_code == 200
    used = client.get("/_control/stats").json()["credits_used"]
    client.post("/_control/limits", json={"credits": used})
    refused = client.post("/crm/v8/Contacts/upsert", json=body)
    assert refused.status_code == 429 and refused.json()["code"] == "LIMIT_EXCEEDED"
    client.post("/_control/limits", json={"credits": 0})
    assert client.post("/crm/v8/Contacts/upsert", json=body).status_code == 200


def test_expire_and_revoke_faults(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"mode": "expire_tokens"})
    search = client.get("/crm/v8/Contacts/search", params={"criteria": "(Email:equals:a)"})
    assert search.status_code == 401
    client.post("/_control/faults", json={"mode": "revoke_refresh_token"})
    revoked = client.post("/oauth/v2/token", data={**FORM, "refresh_token": "r1"})
    assert (revoked.status_code, revoked.json()) == (200, {"error": "invalid_code"})
    client.post("/_control/refresh-token", json={"refresh_token": "r2"})
    again = client.post("/oauth/v2/token", data={**FORM, "refresh_token": "r2"})
    assert "access_token" in again.json()


def test_crmhub_fake_zoho_serves_it() -> None:
    from processes import CRMHUB

    result = subprocess.run(
        [CRMHUB, "fake", "zoho", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--credits" in result.stdout
