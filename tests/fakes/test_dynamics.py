"""The fake Dynamics 365 (connectors/fakes/dynamics/), over loopback as a real subprocess and
in-process behind FakeTransport: Entra ID's token answers and AADSTS errors, Dataverse's
OData error bodies and headers, metadata-checked writes, upsert by alternate key with its
conditions, $batch change sets as transactions, service protection 429s, faults."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import start_fake, stop_fake

from connectors.fakes.dynamics import FakeDynamics
from connectors.fakes.transport import FakeTransport

pytestmark = pytest.mark.integration

TENANT = "tenant-1"
API = "/api/data/v9.2"
JSON = {"Content-Type": "application/json"}
GONE = "0b8f5a2e-0000-4000-8000-00000000dead"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url = start_fake(
        "dynamics",
        "fake dynamics listening on",
        "--tenant",
        TENANT,
        "--client-id",
        "cid",
        "--client-secret",
        "csecret",
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
        fake = FakeDynamics(
            tenant=TENANT, client_id="cid", client_secret="csecret", url="https://org.test"
        )
        c = httpx.Client(base_url="https://org.test", transport=FakeTransport(fake))
    c.post("/_control/reset")
    yield c
    c.close()


def token(client: httpx.Client, **form: str) -> httpx.Response:
    scope = f"{str(client.base_url).rstrip('/')}/.default"
    data = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}
    return client.post(f"/{TENANT}/oauth2/v2.0/token", data={**data, "scope": scope, **form})


def authed(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(client).json()['access_token']}", **JSON}


def test_the_token_answer_is_entras_with_no_refresh_token(client: httpx.Client) -> None:
    answer = token(client)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "other"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://elsewhere/.default"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_refused_tokens_answer_entras_error_bodies(
    client: httpx.Client, form: dict[str, str], status: int, error: str, code: int
) -> None:
    answer = token(client, **form)
    body = answer.json()
    assert answer.status_code == status and body["error"] == error
    assert body["error_codes"] == [code] and body["error_description"].startswith(f"AADSTS{code}:")
    assert {"trace_id", "correlation_id", "timestamp", "error_uri"} <= set(body)


def test_a_revoked_secret_is_aadsts7000222_until_a_new_one_is_installed(
    client: httpx.Client,
) -> None:
    client.post("/_control/faults", json={"mode": "revoke_credentials"})
    refused = token(client)
    assert refused.status_code == 401 and refused.json()["error_codes"] == [7000222]
    client.post("/_control/credentials", json={"client_secret": "csecret"})
    assert token(client).status_code == 200


def test_an_expired_token_is_401_with_a_bearer_challenge(client: httpx.Client) -> None:
    headers = authed(client)
    client.post("/_control/faults", json={"mode": "expire_tokens"})
    answer = client.get(f"{API}/contacts", headers=headers)
    assert answer.status_code == 401 and answer.content == b""
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_upsert_by_alternate_key_honours_its_conditions(client: httpx.Client) -> None:
    h = authed(client)
    url = f"{API}/contacts(emailaddress1='ada%40example.com')"
    missing = client.patch(url, json={"lastname": "L"}, headers={**h, "If-Match": "*"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80060891"
    created = client.patch(url, json={"lastname": "L"}, headers=h)
    assert created.status_code == 204 and "contacts(" in created.headers["OData-EntityId"]
    assert created.headers["OData-Version"] == "4.0"
    assert "x-ms-ratelimit-burst-remaining-xrm-requests" in created.headers
    exists = client.patch(url, json={"lastname": "M"}, headers={**h, "If-None-Match": "*"})
    assert exists.status_code == 412 and exists.json()["error"]["code"] == "0x80040237"
    upper = f"{API}/contacts(emailaddress1='ADA%40EXAMPLE.COM')"
    shown = client.patch(
        upper, json={"lastname": "N"}, headers={**h, "Prefer": "return=representation"}
    )
    assert shown.status_code == 200 and shown.json()["lastname"] == "N"
    rows = client.get("/_control/records", params={"entity_set": "contacts"}).json()["records"]
    assert len(rows) == 1 and rows[0]["emailaddress1"] == "ada@example.com"


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"nickname": "x"}, "0x0", "Could not find a property named 'nickname'"),
        ({"lastname": "x" * 51}, "0x80044331", "The length of the 'lastname' attribute"),
        ({"preferredcontactmethodcode": 9}, "0x8004431a", "Accepted Values: 1,2,3,4,5"),
        ({"donotemail": "yes"}, "0x0", "Cannot convert the literal 'yes'"),
        (
            {"parentcustomerid_account@odata.bind": f"/accounts({GONE})"},
            "0x80040217",
            f"account With Id = {GONE} Does Not Exist",
        ),
    ],
)
def test_writes_are_checked_against_the_metadata(
    client: httpx.Client, body: dict[str, Any], code: str, words: str
) -> None:
    answer = client.post(f"{API}/contacts", json=body, headers=authed(client))
    error = answer.json()["error"]
    assert error["code"] == code and words in error["message"]


def test_a_key_a_url_cannot_carry_is_refused_and_recorded(client: httpx.Client) -> None:
    url = f"{API}/contacts(emailaddress1='ada%2Bnews%40example.com')"
    answer = client.patch(url, json={"lastname": "L"}, headers=authed(client))
    assert answer.status_code == 400
    violations = client.get("/_control/violations").json()["violations"]
    assert violations[-1]["problem"] == "a key value a URL cannot address"


def batch_of(*changesets: list[tuple[str, str, str]]) -> tuple[str, bytes]:
    """A $batch as Microsoft's examples write it, from (method, url, json body) requests."""
    lines = []
    for number, requests in enumerate(changesets):
        lines += [
            "--batch_AAA",
            f"Content-Type: multipart/mixed; boundary=changeset_{number}",
            "",
        ]
        for content_id, (method, url, body) in enumerate(requests, start=1):
            lines += [
                f"--changeset_{number}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                f"Content-ID: {content_id}",
                "",
                f"{method} {url} HTTP/1.1",
                "Content-Type: application/json",
                "",
                body,
            ]
        lines.append(f"--changeset_{number}--")
    lines += ["--batch_AAA--", ""]
    return "multipart/mixed; boundary=batch_AAA", "\r\n".join(lines).encode()


def test_a_change_set_is_one_transaction_and_continue_on_error_goes_on(
    client: httpx.Client,
) -> None:
    h = authed(client)
    good = ("PATCH", f"{API}/contacts(emailaddress1='a%40x.com')", '{"lastname": "A"}')
    bad = (
        "PATCH",
        f"{API}/contacts(emailaddress1='b%40x.com')",
        '{"lastname": "' + "B" * 60 + '"}',
    )
    later = ("POST", f"{API}/accounts", '{"name": "Later"}')
    content_type, body = batch_of([good, bad], [later])
    stopped = client.post(
        f"{API}/$batch", content=body, headers={**h, "Content-Type": content_type}
    )
    assert stopped.status_code == 200
    # the failed change set's one error, then the batch stops
    assert stopped.content.count(b"HTTP/1.1 ") == 1
    assert b"0x80044331" in stopped.content
    records = client.get("/_control/records").json()["records"]
    assert records == []  # the first request of the change set rolled back with it
    going_on = client.post(
        f"{API}/$batch",
        content=body,
        headers={**h, "Content-Type": content_type, "Prefer": "odata.continue-on-error"},
    )
    assert going_on.content.count(b"HTTP/1.1 ") == 2
    names = [r.get("name") for r in client.get("/_control/records").json()["records"]]
    assert names == ["Later"]
    assert client.get("/_control/stats").json()["api_calls"] == 2  # a $batch counts one


def test_a_throttle_storm_answers_429_with_and_without_retry_after(client: httpx.Client) -> None:
    h = authed(client)
    client.post("/_control/faults", json={"mode": "throttle", "count": 1, "retry_after": 7})
    first = client.get(f"{API}/contacts", headers=h)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert first.json()["error"]["code"] == "0x80072322"
    client.post(
        "/_control/faults",
        json={"mode": "throttle_no_retry_after", "count": 1, "limit": "concurrency"},
    )
    second = client.get(f"{API}/contacts", headers=h)
    assert second.status_code == 429 and "Retry-After" not in second.headers
    assert second.json()["error"]["code"] == "0x80072326"
    assert client.get(f"{API}/contacts", headers=h).status_code == 200


def test_crmhub_fake_dynamics_serves_it() -> None:
    from processes import CRMHUB

    result = subprocess.run(
        [CRMHUB, "fake", "dynamics", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--token-seconds" in result.stdout
