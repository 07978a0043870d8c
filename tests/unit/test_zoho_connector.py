"""The Zoho CRM connector (connectors/zoho.py) against the fake Zoho the package ships
(connectors/fakes/zoho/), in-process behind its httpx transport, with the ledger's token
store and memo on fakeredis; answers the fake does not give are written here
(httpx.MockTransport) with their source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import httpx
import pytest

from connectors.fakes.transport import FakeTransport
from connectors.fakes.zoho import FakeZoho
from connectors.registry import CONNECTORS
from connectors.zoho import ZohoConnector
from connectors.zoho_session import criterion
from core.config import ConnectionConfig
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.ledger.keys import LedgerKeys
from core.ledger.memo import Memo
from core.ledger.tokens import TokenStore
from core.mapping.record import FieldResult, MappedRecord
from core.vocabulary import DeadCategory

ACCOUNTS = "https://accounts.zoho.eu"
API = "https://www.zohoapis.eu"
ENV = {
    "ZOHO_CLIENT_ID": "1000.FAKEZOHOCLIENT",
    "ZOHO_CLIENT_SECRET": "fake-zoho-client-secret",
    "ZOHO_REFRESH_TOKEN": "1000.fake-zoho-refresh-token",
}
AUTH = {
    "type": "oauth2",
    "client_id_env": "ZOHO_CLIENT_ID",
    "client_secret_env": "ZOHO_CLIENT_SECRET",
    "refresh_token_env": "ZOHO_REFRESH_TOKEN",
}


class Recorder(FakeTransport):
    """The fake, with every request kept (which host a call went to, with what)."""

    def __init__(self, app: FakeZoho) -> None:
        super().__init__(app)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)

    def calls(self, part: str) -> list[httpx.Request]:
        return [r for r in self.requests if part in r.url.path]


def connection(**options: Any) -> ConnectionConfig:
    return ConnectionConfig(
        name="zoho",
        connector="zoho",
        base_url=ACCOUNTS,
        accounts_url=ACCOUNTS,
        auth=AUTH,
        options=options,
    )


class Env:
    def __init__(self, **options: Any) -> None:
        self.fake = FakeZoho(api_domain=API)
        self.transport = Recorder(self.fake)
        redis = fakeredis.FakeRedis()
        keys = LedgerKeys("t")
        self.tokens = TokenStore(redis, keys)
        self.memo = Memo(redis, keys)
        self.connector = ZohoConnector(
            connection(**options), ENV, transport=self.transport, tokens=self.tokens, memo=self.memo
        )

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("Email")): r for r in self.fake.records("Contacts")}


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.connector.close()
    assert e.fake.violations() == [], "the connector sent a request Zoho would refuse"


def contact(
    email: str, last: str = "Lovelace", action: str = "upsert", **more: Any
) -> MappedRecord:
    fields = {"Email": email.strip().lower(), "Last_Name": last, **more}
    owners = {"Title": "target"}
    return MappedRecord(
        mapping="m",
        connection="zoho",
        object="Contacts",
        action=action,
        match_field="Email",
        match_value=email.strip().lower(),
        fields=tuple(FieldResult(k, v, v, owners.get(k, "source")) for k, v in fields.items()),
    )


def account(name: str) -> MappedRecord:
    return MappedRecord(
        mapping="m",
        connection="zoho",
        object="Accounts",
        action="upsert",
        match_field="Account_Name",
        match_value=name,
        fields=(FieldResult("Account_Name", name, name, "source"),),
    )


def test_the_registry_knows_the_zoho_connector() -> None:
    assert CONNECTORS["zoho"] is ZohoConnector


# auth and hosts ---------------------------------------------------------------------------
def test_it_refreshes_at_the_data_centres_accounts_server_and_calls_the_api_domain(
    env: Env,
) -> None:
    env.connector.deliver(contact("ada@example.com"))
    [token] = env.transport.calls("/oauth/v2/token")
    assert str(token.url) == f"{ACCOUNTS}/oauth/v2/token"
    assert dict(httpx.QueryParams(token.content.decode()))["grant_type"] == "refresh_token"
    crm = env.transport.calls("/crm/v8/")
    assert crm and all(str(r.url).startswith(f"{API}/crm/v8/") for r in crm)
    assert all(r.headers["Authorization"].startswith("Zoho-oauthtoken 1000.") for r in crm)
    assert env.tokens.get("zoho").instance_url == API


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        ("https://accounts.zoho.com", "https://accounts.zoho.com/oauth/v2/token"),
        ("https://accounts.zoho.in", "https://accounts.zoho.in/oauth/v2/token"),
        ("https://accounts.zohocloud.ca", "https://accounts.zohocloud.ca/oauth/v2/token"),
    ],
)
def test_each_data_centre_has_its_own_token_endpoint(accounts: str, expected: str) -> None:
    conn = ConnectionConfig(
        name="zoho", connector="zoho", base_url=accounts, accounts_url=accounts, auth=AUTH
    )
    tokens = TokenStore(fakeredis.FakeRedis(), LedgerKeys("t"))
    connector = ZohoConnector(conn, ENV, transport=Recorder(FakeZoho()), tokens=tokens)
    assert connector.token_endpoint() == expected


def test_a_revoked_refresh_token_answered_with_http_200_is_an_auth_error(env: Env) -> None:
    env.fake.fault(mode="revoke_refresh_token")
    with pytest.raises(AuthError, match="invalid_code"):
        env.connector.deliver(contact("ada@example.com"))
    assert env.contacts() == {}


def test_an_expired_token_gets_exactly_one_refresh_then_the_write_goes_through(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com"))
    env.fake.fault(mode="expire_tokens")
    env.connector.deliver(contact("grace@example.com", "Hopper"))
    assert len(env.transport.calls("/oauth/v2/token")) == 2
    assert set(env.contacts()) == {"ada@example.com", "grace@example.com"}


def test_a_token_refused_after_its_refresh_pauses_with_exactly_one_refresh() -> None:
    tokens: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            tokens.append("t")
            return httpx.Response(
                200, json={"access_token": f"1000.t{len(tokens)}", "api_domain": API}
            )
        # crm-apis.md 3.1 [observed]: the expired / invalid access token answer
        return httpx.Response(
            401,
            json={
                "code": "INVALID_TOKEN",
                "details": {},
                "message": "invalid oauth token",
                "status": "error",
            },
        )

    store = TokenStore(fakeredis.FakeRedis(), LedgerKeys("t"))
    connector = ZohoConnector(
        connection(), ENV, transport=httpx.MockTransport(answer), tokens=store
    )
    with pytest.raises(AuthError, match="INVALID_TOKEN"):
        connector.deliver(contact("ada@example.com"))
    assert len(tokens) == 2  # the first token, and exactly one refresh


def test_zohos_token_throttle_is_transient_not_a_pause(env: Env) -> None:
    env.fake.fault(mode="token_throttle", count=1)
    with pytest.raises(TransientError) as caught:
        env.connector.deliver(contact("ada@example.com"))
    assert not isinstance(caught.value, AuthError) and caught.value.retry_after == 60
    env.connector.deliver(contact("ada@example.com"))
    assert "ada@example.com" in env.contacts()


# writes -----------------------------------------------------------------------------------
def test_a_backlog_is_upserted_100_records_per_request_on_the_match_key(env: Env) -> None:
    records = [contact(f"person{i}@example.com", f"Person{i}") for i in range(250)]
    outcomes = env.connector.deliver_batch(records)
    assert all(not isinstance(o, HubError) and o.operation == "created" for o in outcomes)
    upserts = env.transport.calls("/upsert")
    assert [len(json.loads(r.content)["data"]) for r in upserts] == [100, 100, 50]
    assert all(json.loads(r.content)["duplicate_check_fields"] == ["Email"] for r in upserts)
    assert len(env.contacts()) == 250
    again = env.connector.deliver_batch(records[:3])
    assert [o.operation for o in again if not isinstance(o, HubError)] == ["updated"] * 3
    assert len(env.contacts()) == 250
    assert {o.record_id for o in outcomes if not isinstance(o, HubError)} == {
        str(c["id"]) for c in env.contacts().values()
    }


def test_mixed_results_207_are_mapped_back_to_each_record(env: Env) -> None:
    records = [
        contact("ok1@example.com"),
        contact("long@example.com", "L" * 81),
        contact("nolast@example.com", ""),
        contact("ok2@example.com"),
    ]
    ok1, long, nolast, ok2 = env.connector.deliver_batch(records)
    assert not isinstance(ok1, HubError) and not isinstance(ok2, HubError)
    assert isinstance(long, DataError) and long.category == DeadCategory.REJECTED_BY_TARGET
    [problem] = long.problems
    assert (problem["field"], problem["code"], problem["maximum_length"]) == (
        "Last_Name",
        "INVALID_DATA",
        80,
    )
    assert "Last_Name" in str(long) and long.status == 207
    assert isinstance(nolast, DataError)
    assert nolast.problems[0]["field"] == "Last_Name"
    assert nolast.problems[0]["code"] == "MANDATORY_NOT_FOUND"
    assert set(env.contacts()) == {"ok1@example.com", "ok2@example.com"}
    assert len(env.transport.calls("/upsert")) == 1


def test_a_lone_refused_record_is_a_data_error_naming_the_field(env: Env) -> None:
    with pytest.raises(DataError) as caught:
        env.connector.deliver(contact("ada@example.com", Lead_Source="Carrier Pigeon"))
    [problem] = caught.value.problems
    assert problem["field"] == "Lead_Source" and "Web Research" in problem["supported_values"]
    assert caught.value.status == 400


def test_one_key_twice_in_a_batch_is_written_in_two_rounds(env: Env) -> None:
    first, second = env.connector.deliver_batch(
        [contact("ada@example.com", "First"), contact("ADA@example.com ", "Second")]
    )
    assert not isinstance(first, HubError) and first.operation == "created"
    assert not isinstance(second, HubError) and second.operation == "updated"
    assert env.contacts()["ada@example.com"]["Last_Name"] == "Second"


def test_a_target_owned_field_is_kept_and_the_records_are_read_once(env: Env) -> None:
    env.fake.add_record("Contacts", Email="ada@example.com", Last_Name="L", Title="Rep's title")
    outcomes = env.connector.deliver_batch(
        [
            contact("ada@example.com", Title="Source title"),
            contact("grace@example.com", "Hopper", Title="Admiral"),
        ]
    )
    ada, grace = outcomes
    assert not isinstance(ada, HubError) and ada.skipped_fields == ("Title",)
    assert not isinstance(grace, HubError) and grace.skipped_fields == ()
    assert env.contacts()["ada@example.com"]["Title"] == "Rep's title"
    assert env.contacts()["grace@example.com"]["Title"] == "Admiral"
    [search] = env.transport.calls("/search")
    assert search.url.params["criteria"] == (
        "((Email:equals:ada@example.com)or(Email:equals:grace@example.com))"
    )


def test_update_only_skips_a_missing_record_and_create_only_an_existing_one(env: Env) -> None:
    env.fake.add_record("Contacts", Email="ada@example.com", Last_Name="L")
    [skipped] = env.connector.deliver_batch([contact("new@example.com", action="update_only")])
    assert not isinstance(skipped, HubError) and skipped.operation == "skipped"
    kept = env.connector.deliver(contact("ada@example.com", "Other", action="create_only"))
    assert kept.operation == "skipped"
    assert env.contacts()["ada@example.com"]["Last_Name"] == "L"
    assert set(env.contacts()) == {"ada@example.com"}


def test_related_accounts_are_found_or_created_and_linked_as_lookups(env: Env) -> None:
    existing = env.fake.add_record("Accounts", Account_Name="Acme (UK), Ltd")
    ids = env.connector.find_or_create([account("Acme (UK), Ltd"), account("Initech")])
    assert ids[0] == existing
    assert isinstance(ids[1], str) and ids[1] != existing
    assert len(env.fake.records("Accounts")) == 2
    [search] = env.transport.calls("/search")
    assert criterion("Account_Name", "Acme (UK), Ltd") in search.url.params["criteria"]
    linked = MappedRecord(
        mapping="m",
        connection="zoho",
        object="Contacts",
        action="upsert",
        match_field="Email",
        match_value="ada@example.com",
        fields=(
            FieldResult("Email", "ada@example.com", "ada@example.com", "source"),
            FieldResult("Last_Name", "L", "L", "source"),
        ),
        related=((("Account_Name", account("Initech"))),),
    ).linked("Account_Name", str(ids[1]))
    env.connector.deliver(linked)
    assert env.contacts()["ada@example.com"]["Account_Name"] == {"id": ids[1]}


def test_a_related_link_to_a_deleted_account_is_a_data_error_naming_the_link(env: Env) -> None:
    record = contact("ada@example.com")
    record = MappedRecord(**{**record.__dict__, "related": (("Account_Name", account("X")),)})
    with pytest.raises(DataError) as caught:
        env.connector.deliver(record.linked("Account_Name", "5725767000000999999"))
    assert caught.value.problems[0]["field"] == "Account_Name"


# reads --------------------------------------------------------------------------------------
def test_fetch_reads_a_record_and_a_missing_one_is_source_record_missing(env: Env) -> None:
    ada = env.fake.add_record("Contacts", Email="ada@example.com", Last_Name="L", Title="T")
    assert env.connector.fetch("Contacts", ada, ["Email", "Title"]) == {
        "id": ada,
        "Email": "ada@example.com",
        "Title": "T",
    }
    found = env.connector.fetch_many("Contacts", [ada, "5725767000000999999"], ["Email"])
    missing = found["5725767000000999999"]
    assert isinstance(missing, DataError)
    assert missing.category == DeadCategory.SOURCE_RECORD_MISSING
    assert len(env.transport.calls("/crm/v8/Contacts")) == 2  # one GET for both ids


# rate limits and failures -------------------------------------------------------------------
def test_a_429_with_retry_after_cools_down_for_that_long(env: Env) -> None:
    env.fake.fault(mode="rate_limit", retry_after=7, count=1)
    [outcome] = env.connector.deliver_batch([contact("ada@example.com")])
    assert isinstance(outcome, RateLimited) and outcome.retry_after == 7
    env.connector.deliver(contact("ada@example.com"))
    assert "ada@example.com" in env.contacts()


def test_a_429_without_a_hint_cools_down_doubling_until_one_passes(env: Env) -> None:
    env.fake.fault(mode="rate_limit", count=2)
    waits = []
    for _ in range(2):
        with pytest.raises(RateLimited) as caught:
            env.connector.deliver(contact("ada@example.com"))
        waits.append(caught.value.retry_after)
    assert waits == [5.0, 10.0]
    env.connector.deliver(contact("ada@example.com"))
    assert not env.memo.limited("zoho")  # the next refusal starts at 5 s again


def test_used_up_api_credits_are_a_cooldown_not_a_pause(env: Env) -> None:
    env.fake.fault(mode="credits", count=1)
    with pytest.raises(RateLimited, match="API credits"):
        env.connector.deliver(contact("ada@example.com"))
    env.connector.deliver(contact("ada@example.com"))
    assert "ada@example.com" in env.contacts()


def test_a_server_error_fails_every_record_of_the_request_transiently(env: Env) -> None:
    env.fake.fault(mode="error5xx", count=1)
    outcomes = env.connector.deliver_batch([contact("a@example.com"), contact("b@example.com")])
    assert all(isinstance(o, TransientError) and o.status == 500 for o in outcomes)
    assert not any(isinstance(o, RateLimited) for o in outcomes)


def mocked(answer: Callable[[httpx.Request], httpx.Response]) -> ZohoConnector:
    tokens = TokenStore(fakeredis.FakeRedis(), LedgerKeys("t"))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "1000.t", "api_domain": API})
        return answer(request)

    return ZohoConnector(connection(), ENV, transport=httpx.MockTransport(handler), tokens=tokens)


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


@pytest.mark.parametrize(
    ("status", "body", "kind", "says"),
    [
        # upsertRecords/examples/response-401-oauthscopemismatch
        (401, error_body("OAUTH_SCOPE_MISMATCH", "invalid oauth scope"), AuthError, "scope"),
        # createRecords/examples/response-403-nopermission
        (
            403,
            error_body("NO_PERMISSION", "Permission denied", permissions=["Crm_Implied_View"]),
            AuthError,
            "NO_PERMISSION",
        ),
        (500, error_body("INTERNAL_ERROR", "Internal server error occurred."), TransientError, ""),
        # upsertRecords/examples/response-400-invalidmodule (top-level)
        (
            400,
            error_body(
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                resource_path_index=0,
            ),
            DataError,
            "INVALID_MODULE",
        ),
        (502, {"message": "bad gateway"}, TransientError, "502"),
    ],
)
def test_request_level_answers_are_classified(
    status: int, body: dict[str, Any], kind: type[HubError], says: str
) -> None:
    connector = mocked(lambda request: httpx.Response(status, json=body))
    [outcome] = connector.deliver_batch([contact("ada@example.com")])
    assert type(outcome) is kind and says in str(outcome)


def test_duplicate_data_names_the_field_and_the_duplicate_record() -> None:
    # crm-apis.md 3.2: DUPLICATE_DATA with details.duplicate_record
    answer = {
        "data": [
            error_body(
                "DUPLICATE_DATA",
                "duplicate data",
                api_name="Secondary_Email",
                json_path="$.data[0].Secondary_Email",
                duplicate_record={"id": "5725767000000411099", "module": {"api_name": "Contacts"}},
                more_records=False,
            )
        ]
    }
    connector = mocked(lambda request: httpx.Response(400, json=answer))
    with pytest.raises(DataError) as caught:
        connector.deliver(contact("ada@example.com"))
    [problem] = caught.value.problems
    assert problem["field"] == "Secondary_Email"
    assert problem["duplicates"] == [{"id": "5725767000000411099", "module": "Contacts"}]


def test_multiple_errors_of_one_record_are_each_a_problem() -> None:
    answer = {
        "data": [
            error_body(
                "MULTIPLE_OR_MULTI_ERRORS",
                "multiple errors",
                errors=[
                    error_body("INVALID_DATA", "invalid data", api_name="Email"),
                    error_body(
                        "MANDATORY_NOT_FOUND", "required field not found", api_name="Last_Name"
                    ),
                ],
            )
        ]
    }
    connector = mocked(lambda request: httpx.Response(400, json=answer))
    with pytest.raises(DataError) as caught:
        connector.deliver(contact("ada@example.com"))
    assert [p["field"] for p in caught.value.problems] == ["Email", "Last_Name"]


def test_an_answer_that_does_not_list_every_record_is_transient() -> None:
    connector = mocked(lambda request: httpx.Response(200, json={"data": []}))
    outcomes = connector.deliver_batch([contact("a@example.com"), contact("b@example.com")])
    assert all(type(o) is TransientError for o in outcomes)


def test_a_429_body_with_details_retry_after_is_honoured() -> None:
    # v8.0/apis/operations/getAvailableApis/examples/response-429-sample.md
    body = error_body(
        "TOO_MANY_REQUESTS", "too many requests", retry_after=60, limit=100, window=60
    )
    connector = mocked(lambda request: httpx.Response(429, json=body))
    with pytest.raises(RateLimited) as caught:
        connector.deliver(contact("ada@example.com"))
    assert caught.value.retry_after == 60


def test_options_trigger_is_sent_with_each_write_and_left_out_by_default() -> None:
    quiet = Env(trigger=[])
    quiet.connector.deliver_batch([contact("a@example.com"), contact("b@example.com")])
    [upsert] = quiet.transport.calls("/upsert")
    assert json.loads(upsert.content)["trigger"] == []
    default = Env()
    default.connector.deliver(contact("a@example.com"))
    [upsert] = default.transport.calls("/upsert")
    assert "trigger" not in json.loads(upsert.content)
    assert quiet.fake.violations() == [] and default.fake.violations() == []


def test_options_batch_size_caps_the_records_per_request() -> None:
    small = Env(batch_size=10)
    assert small.connector.batch_size == 10
    assert Env(batch_size=500).connector.batch_size == 100  # Zoho's limit


def test_options_limit_probe_max_seconds_caps_the_hintless_cooldown() -> None:
    capped = Env(limit_probe_max_seconds=7)
    capped.fake.fault(mode="credits", count=3)
    waits = []
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            capped.connector.deliver(contact("ada@example.com"))
        waits.append(caught.value.retry_after)
    assert waits == [5.0, 7.0, 7.0]
