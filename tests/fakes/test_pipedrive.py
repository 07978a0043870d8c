"""The fake Pipedrive (connectors/fakes/pipedrive/), run as a real subprocess (`crmhub fake
pipedrive`) and spoken to over loopback, and in-process behind FakeTransport: its answers fit
the official OpenAPI document's 200 schemas, a request Pipedrive would refuse for its shape is
refused in Pipedrive's envelope and recorded, credentials, limits and faults."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import CRMHUB, start_fake, stop_fake

from connectors.fakes.pipedrive import FakePipedrive
from connectors.fakes.pipedrive.spec import load, problems
from connectors.fakes.transport import FakeTransport

pytestmark = pytest.mark.integration

TOKEN = "pd-token-1"
V2 = "/api/v2"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc: subprocess.Popen[str]
    proc, url = start_fake(
        "pipedrive",
        "fake pipedrive listening on",
        "--api-token",
        TOKEN,
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
        fake = FakePipedrive(
            api_token=TOKEN, client_id="cid", client_secret="csecret", refresh_token="r1"
        )
        c = httpx.Client(
            base_url="https://acme.pipedrive.com", transport=FakeTransport(fake), timeout=10.0
        )
    c.post("/_control/reset")
    c.headers["x-api-token"] = TOKEN
    yield c
    c.close()


def fits(key: str, answer: httpx.Response) -> None:
    """The answer fits the 200 schema the official document gives for this operation."""
    assert answer.status_code == 200, answer.text
    assert problems(load()[key].answer, answer.json(), strict=False) == []


def test_persons_and_organizations_answer_in_the_documents_shapes(client: httpx.Client) -> None:
    org = client.post(f"{V2}/organizations", json={"name": "Acme Ltd"})
    fits("POST /organizations", org)
    org_id = org.json()["data"]["id"]
    made = client.post(
        f"{V2}/persons",
        json={
            "name": "Ada Lovelace",
            "org_id": org_id,
            "emails": [{"value": "Ada@Example.com", "primary": True, "label": "work"}],
            "phones": [{"value": "+1 555", "primary": True, "label": "work"}],
        },
    )
    fits("POST /persons", made)
    person = made.json()["data"]
    assert (person["first_name"], person["last_name"]) == ("Ada", "Lovelace")
    fits("GET /persons/{id}", client.get(f"{V2}/persons/{person['id']}"))
    changed = client.patch(f"{V2}/persons/{person['id']}", json={"name": "Ada King"})
    fits("PATCH /persons/{id}", changed)
    assert changed.json()["data"]["emails"] == person["emails"]  # what is not sent stays
    found = client.get(
        f"{V2}/persons/search",
        params={"term": "ada@example.COM", "fields": "email", "exact_match": "true"},
    )
    fits("GET /persons/search", found)
    [hit] = found.json()["data"]["items"]
    assert hit["item"]["emails"] == ["Ada@Example.com"]  # exact match is not case sensitive
    assert hit["item"]["organization"] == {"id": org_id, "name": "Acme Ltd"}
    orgs = client.get(
        f"{V2}/organizations/search",
        params={"term": "acme ltd", "fields": "name", "exact_match": "true"},
    )
    fits("GET /organizations/search", orgs)
    assert [i["item"]["id"] for i in orgs.json()["data"]["items"]] == [org_id]
    assert client.get("/_control/violations").json()["count"] == 0


def test_search_pages_with_a_cursor(client: httpx.Client) -> None:
    for i in range(3):
        client.post(f"{V2}/persons", json={"name": f"Same Name {i}"})
    first = client.get(
        f"{V2}/persons/search", params={"term": "same", "fields": "name", "limit": 2}
    )
    assert len(first.json()["data"]["items"]) == 2
    cursor = first.json()["additional_data"]["next_cursor"]
    rest = client.get(
        f"{V2}/persons/search",
        params={"term": "same", "fields": "name", "limit": 2, "cursor": cursor},
    )
    assert len(rest.json()["data"]["items"]) == 1
    assert rest.json()["additional_data"]["next_cursor"] is None


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "words"),
    [
        ("POST", "/persons", {"json": {"name": "A", "org_id": "7"}}, "org_id: Expected integer"),
        ("POST", "/persons", {"json": {"name": "A", "email": "a@x.com"}}, "email: is not a field"),
        (
            "POST",
            "/persons",
            {"json": {"name": "A", "emails": "a@x.com"}},
            "emails: Expected array",
        ),
        ("GET", "/persons/search", {"params": {"fields": "email"}}, "term: is required"),
        (
            "GET",
            "/persons/search",
            {"params": {"term": "ab", "fields": "mail"}},
            "fields: must be one of",
        ),
        ("GET", "/persons/search", {"params": {"term": "ab", "exact_match": "1"}}, "exact_match"),
    ],
)
def test_a_request_of_the_wrong_shape_is_refused_in_pipedrives_envelope_and_recorded(
    client: httpx.Client, method: str, path: str, kwargs: dict[str, Any], words: str
) -> None:
    answer = client.request(method, f"{V2}{path}", **kwargs)
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False and words in body["error"]
    assert body["data"] is None and body["additional_data"] is None and body["error_info"]
    assert client.get("/_control/violations").json()["count"] == 1


def test_data_refusals_are_pipedrives(client: httpx.Client) -> None:
    nameless = client.post(f"{V2}/persons", json={"emails": [{"value": "a@x.com"}]})
    assert (nameless.status_code, nameless.json()["error"]) == (400, "Name must be given.")
    missing = client.get(f"{V2}/persons/12345")
    assert missing.status_code == 404 and missing.json()["success"] is False
    no_org = client.post(f"{V2}/persons", json={"name": "A", "org_id": 999})
    assert no_org.status_code == 400 and "org_id" in no_org.json()["error"]


def test_credentials_api_token_and_oauth(client: httpx.Client) -> None:
    anonymous = client.get(f"{V2}/persons/1", headers={"x-api-token": "wrong"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized access"
    basic = base64.b64encode(b"cid:csecret").decode()
    token = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "r1"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert token.status_code == 200
    answer = token.json()
    assert answer["expires_in"] == 3600 and answer["api_domain"].startswith("http")
    bearer = {"Authorization": f"Bearer {answer['access_token']}", "x-api-token": ""}
    assert (
        client.get(f"{V2}/persons/search", params={"term": "ab"}, headers=bearer).status_code == 200
    )
    client.post("/_control/faults", json={"mode": "expire_tokens"})
    expired = client.get(f"{V2}/persons/search", params={"term": "ab"}, headers=bearer)
    assert expired.status_code == 401 and "Invalid token" in expired.json()["error"]
    in_body = client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "r1",
            "client_id": "cid",
            "client_secret": "csecret",
        },
    )
    assert in_body.status_code == 400 and "Invalid client" in in_body.json()["message"]
    client.post("/_control/faults", json={"mode": "revoke_refresh_token"})
    refused = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "r1"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert refused.status_code == 400 and "Invalid grant" in refused.json()["message"]
    client.post("/_control/faults", json={"mode": "revoke_api_token"})
    assert client.get(f"{V2}/persons/1").status_code == 401
    client.post("/_control/api-token", json={"api_token": "pd-token-2"})
    assert client.get(f"{V2}/persons/1", headers={"x-api-token": "pd-token-2"}).status_code == 404


def test_every_answer_carries_the_budget_and_the_daily_budget_runs_out(
    client: httpx.Client,
) -> None:
    client.post("/_control/limits", json={"daily_tokens": 45})
    first = client.get(f"{V2}/persons/search", params={"term": "ab"})  # costs 20
    assert first.headers["x-daily-ratelimit-token-limit"] == "45"
    assert first.headers["x-daily-ratelimit-token-remaining"] == "25"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(first.headers)
    client.get(f"{V2}/persons/search", params={"term": "ab"})
    over = client.get(f"{V2}/persons/search", params={"term": "ab"})
    assert over.status_code == 429 and over.json()["success"] is False
    assert over.headers["x-daily-ratelimit-token-remaining"] == "5"
    assert "retry-after" not in over.headers


def test_a_429_storm_with_and_without_retry_after_then_5xx(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"mode": "rate_limit", "count": 1, "retry_after": 3})
    hinted = client.get(f"{V2}/persons/search", params={"term": "ab"})
    assert (hinted.status_code, hinted.headers["retry-after"]) == (429, "3")
    client.post("/_control/faults", json={"mode": "rate_limit", "count": 1})
    bare = client.get(f"{V2}/persons/search", params={"term": "ab"})
    assert bare.status_code == 429 and "retry-after" not in bare.headers
    assert "x-ratelimit-reset" in bare.headers
    client.post("/_control/faults", json={"mode": "error5xx", "count": 1, "status": 503})
    down = client.get(f"{V2}/persons/search", params={"term": "ab"})
    assert down.status_code == 503 and down.json()["code"] == "ERR_UNKNOWN"
    assert client.get(f"{V2}/persons/search", params={"term": "ab"}).status_code == 200
    stats = client.get("/_control/stats").json()
    assert stats["api_calls"] == 4 and stats["rate_limited"] == 2


def test_crmhub_fake_pipedrive_runs_it() -> None:
    proc = subprocess.Popen(
        [CRMHUB, "fake", "pipedrive", "--port", "0", "--api-token", "cli-token"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake pipedrive listening on http://127.0.0.1:")
        url = line.split()[-1]
        answer = httpx.get(f"{url}/api/v2/persons/1", headers={"x-api-token": "cli-token"})
        assert answer.status_code == 404  # authenticated, and no such person
    finally:
        stop_fake(proc)


def test_a_slow_answer_is_still_the_answer(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"mode": "latency", "latency_ms": 50, "count": 1})
    answer = client.get(f"{V2}/persons/search", params={"term": "ab"})
    assert answer.status_code == 200 and answer.json()["success"] is True
    [fault] = client.get("/_control/faults").json()["faults"]
    assert (fault["mode"], fault["hits"], fault["active"]) == ("latency", 1, False)
