"""The Dynamics 365 connector (connectors/dynamics.py) against the fake Dataverse the package
ships (connectors/fakes/dynamics/), in-process behind its httpx transport, with the ledger's
token store on fakeredis. Where a test needs an answer the fake does not give, it is written
here (httpx.MockTransport) with its source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import httpx
import pytest

from connectors import dynamics_batch
from connectors.dynamics import DynamicsConnector, key_segment, odata_literal
from connectors.dynamics_errors import DEFAULT_RETRY_AFTER_SECONDS, error_for
from connectors.fakes import FAKE_MODULES
from connectors.fakes.dynamics import FakeDynamics, multipart
from connectors.fakes.transport import FakeTransport
from connectors.registry import CONNECTORS
from core.config import ConnectionConfig
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.ledger.keys import LedgerKeys
from core.ledger.tokens import TokenStore
from core.mapping.record import FieldResult, MappedRecord
from core.vocabulary import DeadCategory

ORG = "https://org.crm.dynamics.com"
TENANT = "00000000-0000-0000-0000-0000000000aa"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
ENV = {"DYN_ID": "fake-dynamics-client-id", "DYN_SECRET": "fake-dynamics-client-secret"}
AUTH = {
    "type": "client_credentials",
    "token_url": TOKEN_URL,
    "client_id_env": "DYN_ID",
    "client_secret_env": "DYN_SECRET",
}


class Recorder(FakeTransport):
    """The fake, with every request kept (its method, raw path and headers)."""

    def __init__(self, app: FakeDynamics) -> None:
        super().__init__(app)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


def connection(**options: Any) -> ConnectionConfig:
    return ConnectionConfig(
        name="dynamics",
        connector="dynamics",
        base_url=ORG,
        auth=AUTH,
        options=options,
        alternate_keys={"contacts": ("emailaddress1",), "accounts": ("name", "accountnumber")},
    )


def build(transport: httpx.BaseTransport, **options: Any) -> DynamicsConnector:
    tokens = TokenStore(fakeredis.FakeRedis(), LedgerKeys("t"))
    return DynamicsConnector(connection(**options), ENV, transport=transport, tokens=tokens)


class Env:
    def __init__(self) -> None:
        self.fake = FakeDynamics(url=ORG)
        self.transport = Recorder(self.fake)
        self.connector = build(self.transport)

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {str(r["emailaddress1"]): r for r in self.fake.records("contacts")}


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.connector.close()
    assert e.fake.violations() == [], "the connector sent a request Dataverse would refuse"


def contact(
    email: str, last: str = "Lovelace", action: str = "upsert", **more: Any
) -> MappedRecord:
    fields = {"emailaddress1": email.strip().lower(), "lastname": last, **more}
    owners = {"jobtitle": "target"}
    return MappedRecord(
        mapping="m",
        connection="dynamics",
        object="contacts",
        action=action,
        match_field="emailaddress1",
        match_value=email.strip().lower(),
        fields=tuple(FieldResult(k, v, v, owners.get(k, "source")) for k, v in fields.items()),
    )


def account(name: str) -> MappedRecord:
    return MappedRecord(
        mapping="m",
        connection="dynamics",
        object="accounts",
        action="upsert",
        match_field="name",
        match_value=name,
        fields=(FieldResult("name", name, name, "source"),),
    )


def test_the_registry_and_crmhub_fake_know_dynamics() -> None:
    assert CONNECTORS["dynamics"] is DynamicsConnector
    assert FAKE_MODULES["dynamics"] == "connectors.fakes.dynamics"


def test_the_token_is_a_client_credentials_grant_scoped_to_the_environment(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com"))
    token_request = env.transport.requests[0]
    assert str(token_request.url) == TOKEN_URL
    form = dict(httpx.QueryParams(token_request.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": ENV["DYN_ID"],
        "client_secret": ENV["DYN_SECRET"],
        "scope": f"{ORG}/.default",
    }
    write = env.transport.requests[1]
    assert write.headers["Authorization"].startswith("Bearer ")
    assert write.headers["OData-Version"] == "4.0" and write.headers["OData-MaxVersion"] == "4.0"


def test_an_upsert_by_alternate_key_creates_then_updates_one_record(env: Env) -> None:
    first = env.connector.deliver(contact("ada@example.com", "Lovelace"))
    again = env.connector.deliver(contact(" ADA@Example.com ", "Byron"))
    assert (first.operation, again.operation) == ("created", "updated")
    assert first.record_id == again.record_id
    [row] = env.fake.records("contacts")
    assert (row["emailaddress1"], row["lastname"]) == ("ada@example.com", "Byron")
    patch = env.transport.requests[-1]
    assert patch.method == "PATCH" and "If-Match" not in patch.headers
    assert "If-None-Match" not in patch.headers
    assert patch.headers["Prefer"] == "return=representation"


def test_key_values_are_odata_escaped_so_a_value_cannot_end_the_literal(env: Env) -> None:
    tricky = "o'neil.o''brien@example.com"
    assert odata_literal("o'neil") == "'o''neil'"
    assert key_segment("emailaddress1", "o'neil@x.com") == "(emailaddress1='o%27%27neil%40x.com')"
    env.connector.deliver(contact(tricky))
    env.connector.deliver(contact(tricky.upper(), "Again"))
    [row] = env.fake.records("contacts")
    assert row["emailaddress1"] == tricky and row["lastname"] == "Again"
    path = env.transport.paths()[-1]
    assert "(emailaddress1='o%27%27neil.o%27%27%27%27brien%40example.com')" in path


@pytest.mark.parametrize("email", ["ada+news@example.com", "a&b@example.com", "50%/off@x.com"])
def test_a_key_a_url_cannot_carry_is_looked_up_and_written_by_id(env: Env, email: str) -> None:
    # define-alternate-keys-portal: with /,#,<,>,*,%,&,:,\\,?,+ in a key's data, GET and
    # PATCH by that key do not work (the fake refuses them as a violation)
    first = env.connector.deliver(contact(email, "First"))
    again = env.connector.deliver(contact(email.upper(), "Second"))
    both = env.connector.deliver_batch([contact(f"x{email}", "A"), contact(f"X{email}", "B")])
    assert (first.operation, again.operation) == ("created", "updated")
    assert [getattr(o, "operation", None) for o in both] == ["created", "updated"]
    rows = env.contacts()
    assert rows[email]["lastname"] == "Second" and rows[f"x{email}"]["lastname"] == "B"
    assert len(rows) == 2
    writes = [p for p in env.transport.paths() if not p.startswith("GET")]
    assert all("emailaddress1=" not in p for p in writes)


def test_update_only_sends_if_match_and_a_missing_record_is_skipped(env: Env) -> None:
    result = env.connector.deliver_batch([contact("nobody@example.com", action="update_only")])
    [skipped] = result
    assert not isinstance(skipped, HubError) and skipped.operation == "skipped"
    env.connector.deliver(contact("x@example.com"))
    assert "nobody@example.com" not in env.contacts()
    sent = next(r for r in env.transport.requests if r.method == "PATCH")
    assert sent.headers["If-Match"] == "*"
    updated = env.connector.deliver_batch([contact("x@example.com", "New", action="update_only")])
    assert getattr(updated[0], "operation", None) == "updated"
    assert env.contacts()["x@example.com"]["lastname"] == "New"


def test_create_only_sends_if_none_match_and_never_overwrites(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com", "Lovelace"))
    [result] = env.connector.deliver_batch([contact("ada@example.com", "Other", "create_only")])
    assert not isinstance(result, HubError) and result.operation == "skipped"
    assert env.contacts()["ada@example.com"]["lastname"] == "Lovelace"
    sent = [r for r in env.transport.requests if r.method == "PATCH"][-1]
    assert sent.headers["If-None-Match"] == "*"
    [made] = env.connector.deliver_batch([contact("new@example.com", "New", "create_only")])
    assert not isinstance(made, HubError) and made.operation == "created"


def test_a_user_edited_target_owned_field_is_read_once_and_never_overwritten(env: Env) -> None:
    env.fake.add_record("contacts", emailaddress1="ada@example.com", jobtitle="User's title")
    records = [
        contact("ada@example.com", jobtitle="Source title"),
        contact("bob@example.com", jobtitle="Bob's title"),
        contact("cy@example.com", jobtitle="Cy's title"),
    ]
    outcomes = env.connector.deliver_batch(records)
    reads = [r for r in env.transport.requests if r.method == "GET"]
    assert len(reads) == 1  # the owned fields of the whole batch, one $filter
    rows = env.contacts()
    assert rows["ada@example.com"]["jobtitle"] == "User's title"
    assert rows["bob@example.com"]["jobtitle"] == "Bob's title"
    first = outcomes[0]
    assert not isinstance(first, HubError) and first.skipped_fields == ("jobtitle",)


def test_a_backlog_is_one_batch_and_a_bad_record_does_not_sink_the_others(env: Env) -> None:
    records = [contact(f"p{i}@example.com") for i in range(30)]
    records[7] = contact("toolong@example.com", "x" * 51)
    records[12] = contact("badchoice@example.com", preferredcontactmethodcode=9)
    before = env.fake.state.stats()["api_calls"]
    outcomes = env.connector.deliver_batch(records)
    assert env.fake.state.stats()["api_calls"] - before == 1  # one $batch
    bad = {i: o for i, o in enumerate(outcomes) if isinstance(o, HubError)}
    assert sorted(bad) == [7, 12]
    assert all(isinstance(e, DataError) for e in bad.values())
    assert bad[7].problems[0]["field"] == "lastname"  # type: ignore[attr-defined]
    assert bad[12].problems[0]["field"] == "preferredcontactmethodcode"  # type: ignore[attr-defined]
    assert len(env.contacts()) == 28
    batch_request = next(r for r in env.transport.requests if r.url.path.endswith("$batch"))
    assert batch_request.headers["Prefer"] == "odata.continue-on-error"


def test_one_key_twice_in_a_batch_makes_one_record(env: Env) -> None:
    outcomes = env.connector.deliver_batch(
        [contact("twice@example.com", "First"), contact("TWICE@example.com", "Second")]
    )
    assert [getattr(o, "operation", None) for o in outcomes] == ["created", "updated"]
    assert env.contacts()["twice@example.com"]["lastname"] == "Second"


def test_a_batch_built_by_the_connector_reads_as_change_sets_of_one_request() -> None:
    parts = [
        dynamics_batch.Part(
            "PATCH", "/api/data/v9.2/contacts(emailaddress1='a%40x.com')", {"a": 1}
        ),
        dynamics_batch.Part("POST", "/api/data/v9.2/contacts", {"b": "é"}, {"Prefer": "x"}),
    ]
    content_type, body = dynamics_batch.build(parts)
    groups = multipart.parse(content_type, body)  # the fake's own reader
    assert [g.changeset for g in groups] == [True, True]
    assert [(r.method, r.url, json.loads(r.body)) for g in groups for r in g.requests] == [
        ("PATCH", "/api/data/v9.2/contacts(emailaddress1='a%40x.com')", {"a": 1}),
        ("POST", "/api/data/v9.2/contacts", {"b": "é"}),
    ]
    assert groups[1].requests[0].headers["prefer"] == "x"


def test_a_batch_answer_in_microsofts_documented_shape_parses_per_change_set() -> None:
    # the shape of the answers in execute-batch-operations-using-web-api: a succeeded change
    # set (multipart, 204 with OData-EntityId), a failed one (one application/http error)
    answer = (
        "--batchresponse_c1bd45c1\r\n"
        "Content-Type: multipart/mixed; boundary=changesetresponse_ff888b1e\r\n\r\n"
        "--changesetresponse_ff888b1e\r\n"
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n\r\n"
        "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n"
        "OData-EntityId: [Organization URI]/api/data/v9.2/"
        "tasks(a59c24d3-2d3f-ec11-8c62-00224802c8ee)"
        "\r\n\r\n\r\n"
        "--changesetresponse_ff888b1e--\r\n"
        "--batchresponse_c1bd45c1\r\n"
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; odata.metadata=minimal\r\n"
        "OData-Version: 4.0\r\n\r\n"
        '{"error":{"code":"0x80044331","message":"A validation error occurred. The length of '
        "the 'subject' attribute of the 'task' entity exceeded the maximum allowed length of "
        "'200'.\"}}\r\n"
        "--batchresponse_c1bd45c1--\r\n"
    )
    response = httpx.Response(
        200,
        headers={"Content-Type": "multipart/mixed; boundary=batchresponse_c1bd45c1"},
        content=answer.encode(),
        request=httpx.Request("POST", f"{ORG}/api/data/v9.2/$batch"),
    )
    ok, failed = dynamics_batch.parse(response)
    assert ok.status == 204 and ok.headers["odata-entityid"].endswith("00224802c8ee)")
    error = error_for(failed.response())
    assert isinstance(error, DataError) and error.problems[0]["field"] == "subject"


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else b""
    return httpx.Response(status, headers=headers or {}, content=content)


def odata(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("response", "kind", "check"),
    [
        (
            answer(
                429,
                odata(
                    "0x80072322",
                    "Number of requests exceeded the limit of 6000 over "
                    "time window of 300 seconds.",
                ),
                {"Retry-After": "17"},
            ),
            RateLimited,
            lambda e: e.retry_after == 17,
        ),
        (
            answer(429, odata("0x80072321", "Combined execution time ...")),
            RateLimited,
            lambda e: e.retry_after == DEFAULT_RETRY_AFTER_SECONDS and "execution time" in str(e),
        ),
        (answer(503, None, {"Retry-After": "3"}), TransientError, lambda e: e.retry_after == 3),
        (answer(500, odata("0x80040216", "An unexpected error occurred.")), TransientError, None),
        (
            answer(
                400,
                odata(
                    "0x80044150",
                    "Transaction (Process ID 67) was deadlocked on lock "
                    "resources with another process",
                ),
            ),
            TransientError,
            None,
        ),
        (answer(401), AuthError, None),
        (
            answer(
                403,
                odata("0x80040220", "Principal user (Id=1) is missing prvCreateContact privilege"),
            ),
            AuthError,
            lambda e: "security role" in str(e),
        ),
        (
            answer(
                400,
                odata(
                    "0x0",
                    "Could not find a property named 'nickname' on type "
                    "'Microsoft.Dynamics.CRM.contact'.",
                ),
            ),
            DataError,
            lambda e: e.problems[0]["field"] == "nickname",
        ),
        (
            answer(404, odata("0x8006088a", "Resource not found for the segment 'Contact'.")),
            DataError,
            lambda e: e.category == DeadCategory.MAPPING,
        ),
        (
            answer(412, odata("0x80040237", "A record with matching key values already exists.")),
            DataError,
            lambda e: e.category == DeadCategory.REJECTED_BY_TARGET,
        ),
        (answer(302, None, {"Location": "https://elsewhere"}), DataError, None),
    ],
)
def test_every_answer_is_classified_once(
    response: httpx.Response, kind: type[HubError], check: Callable[[Any], bool] | None
) -> None:
    error = error_for(response)
    assert type(error) is kind if kind is not DataError else isinstance(error, DataError)
    assert check is None or check(error)


def test_a_401_gets_one_new_token_then_pauses() -> None:
    tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            tokens.append(request)
            return httpx.Response(200, json={"access_token": f"t{len(tokens)}", "expires_in": 3599})
        return httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})

    connector = build(httpx.MockTransport(handler))
    with pytest.raises(AuthError):
        connector.deliver(contact("ada@example.com"))
    assert len(tokens) == 2  # the first token, and one new one after the 401


def test_an_expired_token_is_renewed_and_the_write_goes_through(env: Env) -> None:
    env.connector.deliver(contact("before@example.com"))
    env.fake.fault(mode="expire_tokens")
    env.connector.deliver(contact("after@example.com"))
    assert {"before@example.com", "after@example.com"} <= set(env.contacts())
    assert env.fake.state.stats()["token_requests"] == 2


def test_a_revoked_credential_is_an_auth_error_naming_entras_code(env: Env) -> None:
    env.fake.fault(mode="revoke_credentials")
    env.fake.fault(mode="expire_tokens")
    with pytest.raises(AuthError, match="AADSTS7000222"):
        env.connector.deliver(contact("ada@example.com"))
    # an admin adds a new secret (the same value here) and the credential is valid again
    env.fake.handle("POST", "/_control/credentials", "", {}, b"{}")
    env.connector.deliver(contact("ada@example.com"))
    assert "ada@example.com" in env.contacts()


def test_a_throttled_batch_is_one_rate_limit_for_every_record(env: Env) -> None:
    env.connector.deliver(contact("warm@example.com"))  # a token first
    env.fake.fault(mode="throttle", count=1, retry_after=9)
    outcomes = env.connector.deliver_batch([contact(f"t{i}@example.com") for i in range(3)])
    assert all(isinstance(o, RateLimited) and o.retry_after == 9 for o in outcomes)
    assert len({id(o) for o in outcomes}) == 1  # one request refused, counted once
    env.fake.fault(mode="throttle_no_retry_after", count=1)
    [alone] = env.connector.deliver_batch([contact("t9@example.com")])
    assert isinstance(alone, RateLimited) and alone.retry_after == DEFAULT_RETRY_AFTER_SECONDS
    assert env.connector.deliver_batch([contact("t9@example.com")])[0].operation == "created"  # type: ignore[union-attr]


def test_related_accounts_are_found_or_created_on_their_key_and_bound(env: Env) -> None:
    existing = env.fake.add_record("accounts", name="Acme Ltd", telephone1="555")
    ids = env.connector.find_or_create([account("acme ltd"), account("Globex")])
    assert ids[0] == existing
    assert isinstance(ids[1], str) and len(ids[1]) == 36
    accounts = {a["name"]: a for a in env.fake.records("accounts")}
    assert accounts["Acme Ltd"]["telephone1"] == "555"  # linked as it is, not rewritten
    link = "parentcustomerid_account@odata.bind"
    record = contact("ada@example.com")
    record = MappedRecord(**{**record.__dict__, "related": ((link, account("Globex")),)})
    env.connector.deliver(record.linked(link, str(ids[1])))
    assert env.contacts()["ada@example.com"]["_parentcustomerid_value"] == ids[1]
    sent = json.loads(env.transport.requests[-1].content)
    assert sent[link] == f"/accounts({ids[1]})"


def test_a_link_to_a_deleted_account_names_the_link_field(env: Env) -> None:
    link = "parentcustomerid_account@odata.bind"
    gone = "0b8f5a2e-0000-4000-8000-000000000001"
    record = contact("ada@example.com")
    record = MappedRecord(**{**record.__dict__, "related": ((link, account("Gone Ltd")),)})
    with pytest.raises(DataError) as caught:
        env.connector.deliver(record.linked(link, gone))
    assert caught.value.problems[0]["field"] == link and caught.value.status == 404


def test_fetch_reads_a_record_and_a_missing_one_is_source_record_missing(env: Env) -> None:
    row_id = env.fake.add_record("contacts", emailaddress1="ada@example.com", lastname="L")
    got = env.connector.fetch("contacts", row_id, ["emailaddress1", "lastname"])
    assert (got["emailaddress1"], got["lastname"], got["contactid"]) == (
        "ada@example.com",
        "L",
        row_id,
    )
    with pytest.raises(DataError) as caught:
        env.connector.fetch("contacts", "0b8f5a2e-0000-4000-8000-00000000dead", [])
    assert caught.value.category == DeadCategory.SOURCE_RECORD_MISSING


def test_read_and_write_serve_the_base_contract(env: Env) -> None:
    record = contact("solo@example.com", "Solo")
    assert env.connector.read(record) is None
    made = env.connector.write(record, record.values(), None)
    assert made.operation == "created" and made.record_id is not None
    found = env.connector.read(record)
    assert found is not None and found["contactid"] == made.record_id
    plus = contact("solo+tag@example.com", "Plus")  # looked up, then created by POST
    assert env.connector.write(plus, plus.values(), None).operation == "created"
    assert env.connector.write(plus, plus.values(), None).operation == "updated"
    assert len(env.fake.records("contacts")) == 2
