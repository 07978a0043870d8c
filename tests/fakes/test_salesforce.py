"""The fake Salesforce (connectors/fakes/salesforce/), run as a real subprocess and spoken to
over loopback (and, through the `client` fixture, also in-process behind FakeTransport):
OAuth without expires_in, Salesforce's error arrays, describe-checked writes, SOQL, upsert by
external id, sObject Collections, duplicate rules, the daily limit and its header, faults."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import start_fake, stop_fake

from connectors.fakes.salesforce import FakeSalesforce
from connectors.fakes.transport import FakeTransport

pytestmark = pytest.mark.integration

V = "/services/data/v62.0"
CREDENTIALS = {"client_id": "cid", "client_secret": "csecret"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc: subprocess.Popen[str]
    proc, url = start_fake(
        "salesforce",
        "fake salesforce listening on",
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
        fake = FakeSalesforce(client_id="cid", client_secret="csecret", refresh_token="r1")
        c = httpx.Client(
            base_url="https://login.salesforce.com", transport=FakeTransport(fake), timeout=10.0
        )
    c.post("/_control/reset")
    token = c.post(
        "/services/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "r1", **CREDENTIALS},
    ).json()["access_token"]
    c.headers["Authorization"] = f"Bearer {token}"
    yield c
    c.close()


def test_the_token_answer_has_an_instance_url_and_no_expires_in(client: httpx.Client) -> None:
    answer = client.post(
        "/services/oauth2/token", data={"grant_type": "client_credentials", **CREDENTIALS}
    )
    body = answer.json()
    assert answer.status_code == 200 and "expires_in" not in body
    assert body["instance_url"].startswith("http") and body["token_type"] == "Bearer"
    refused = client.post(
        "/services/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "nope", **CREDENTIALS},
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_an_expired_session_is_401_invalid_session_id(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"mode": "expire_sessions"})
    answer = client.get(f"{V}/query", params={"q": "SELECT Id FROM Contact"})
    assert answer.status_code == 401
    assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_writes_are_checked_against_the_describe(client: httpx.Client) -> None:
    cases: list[tuple[dict[str, Any], str, list[str]]] = [
        ({"FirstName": "Ada"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ({"LastName": "L", "Email": "nope"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
        (
            {"LastName": "L", "LeadSource": "Carrier Pigeon"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["LeadSource"],
        ),
        ({"LastName": "L", "FirstName": "x" * 41}, "STRING_TOO_LONG", ["FirstName"]),
        ({"LastName": "L", "Lead_Score__c": "high"}, "JSON_PARSER_ERROR", ["Lead_Score__c"]),
        (
            {"LastName": "L", "Lifecycle_Stage__c": "MQL"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Lifecycle_Stage__c"],
        ),
        ({"LastName": "L", "Nickname__c": "x"}, "INVALID_FIELD", ["Nickname__c"]),
        (
            {"LastName": "L", "CreatedDate": "2024-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        (
            {"LastName": "L", "Birthdate": "1815-12-10T00:00:00Z"},
            "JSON_PARSER_ERROR",
            ["Birthdate"],
        ),
    ]
    for values, code, fields in cases:
        answer = client.post(f"{V}/sobjects/Contact", json=values)
        assert answer.status_code == 400, values
        [error] = answer.json()
        assert (error["errorCode"], error["fields"]) == (code, fields)
    good = client.post(
        f"{V}/sobjects/Contact", json={"LastName": "L", "Interests__c": "Product;Events"}
    )
    assert good.status_code == 201 and good.json()["success"] is True
    assert good.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_soql_takes_escapes_and_ignores_case(client: httpx.Client) -> None:
    client.post(f"{V}/sobjects/Account", json={"Name": "O'Brien \\ Sons"})
    found = client.get(
        f"{V}/query",
        params={"q": "SELECT Id, Name FROM Account WHERE Name IN ('o\\'brien \\\\ sons', 'x')"},
    )
    assert found.json()["totalSize"] == 1
    broken = client.get(f"{V}/query", params={"q": "SELECT Id FROM Account WHERE Name = 'O'Brien'"})
    assert broken.status_code == 400 and broken.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_upsert_by_external_id_creates_updates_and_answers_300_for_several(
    client: httpx.Client,
) -> None:
    url = f"{V}/sobjects/Contact/HubSpot_Id__c/77"
    created = client.patch(url, json={"LastName": "A"})
    updated = client.patch(url, json={"LastName": "B"})
    assert (created.status_code, created.json()["created"]) == (201, True)
    assert (updated.status_code, updated.json()["created"]) == (200, False)
    client.post(f"{V}/sobjects/Contact", json={"LastName": "C", "HubSpot_Id__c": "77"})
    several = client.patch(url, json={"LastName": "D"})
    assert several.status_code == 300 and len(several.json()) == 2
    not_external = client.patch(f"{V}/sobjects/Contact/Email/a@b.co", json={"LastName": "E"})
    assert not_external.status_code == 404


def test_collections_answer_per_record_and_roll_back_all_or_none(client: httpx.Client) -> None:
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Good"},
        {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "nope"},
    ]
    answer = client.post(f"{V}/composite/sobjects", json={"allOrNone": False, "records": records})
    results = answer.json()
    assert answer.status_code == 200 and [r["success"] for r in results] == [True, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    rolled = client.post(
        f"{V}/composite/sobjects", json={"allOrNone": True, "records": records}
    ).json()
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    contacts = client.get("/_control/records", params={"object": "Contact"}).json()["records"]
    assert [c["LastName"] for c in contacts] == ["Good"]
    too_many = client.post(
        f"{V}/composite/sobjects",
        json={"records": [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201},
    )
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert len(client.get("/_control/violations").json()["violations"]) == 1


def test_a_duplicate_rule_blocks_the_save_with_its_matches(client: httpx.Client) -> None:
    first = client.post(f"{V}/sobjects/Contact", json={"FirstName": "Ada", "LastName": "Lovelace"})
    again = client.post(f"{V}/sobjects/Contact", json={"FirstName": "ada", "LastName": "LOVELACE"})
    [error] = again.json()
    assert again.status_code == 400 and error["errorCode"] == "DUPLICATES_DETECTED"
    matched = error["duplicateResut"]["matchResults"][0]["matchRecords"][0]["record"]["Id"]
    assert matched == first.json()["id"]


def test_past_the_daily_limit_every_call_is_403_request_limit_exceeded(
    client: httpx.Client,
) -> None:
    client.post("/_control/limits", json={"daily_limit": 2, "api_used": 2})
    answer = client.get(f"{V}/query", params={"q": "SELECT Id FROM Contact"})
    assert answer.status_code == 403
    assert answer.json() == [
        {
            "message": "TotalRequests Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "fields": [],
        }
    ]
    assert answer.headers["Sforce-Limit-Info"] == "api-usage=2/2"


def test_a_row_lock_fault_answers_unable_to_lock_row(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"mode": "row_lock", "count": 1})
    locked = client.post(f"{V}/sobjects/Account", json={"Name": "Acme"})
    assert locked.status_code == 400 and locked.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert client.post(f"{V}/sobjects/Account", json={"Name": "Acme"}).status_code == 201


def test_crmhub_fake_salesforce_serves_it() -> None:
    from processes import CRMHUB

    result = subprocess.run(
        [CRMHUB, "fake", "salesforce", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--daily-limit" in result.stdout
