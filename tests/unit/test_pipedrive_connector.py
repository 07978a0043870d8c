"""The Pipedrive connector (connectors/pipedrive.py, pipedrive_errors.py) against the fake
Pipedrive the package ships (connectors/fakes/pipedrive/), in-process behind its httpx
transport, with the ledger's token store and memo on fakeredis. Pipedrive's answers are cited in
the fake's modules; where a test needs an answer the fake does not give, the answer is written
here (httpx.MockTransport) with its source."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import fakeredis
import httpx
import pytest

from connectors.fakes.pipedrive import FakePipedrive
from connectors.fakes.transport import FakeTransport
from connectors.pipedrive import PipedriveConnector, flat, labelled, wire
from connectors.pipedrive_errors import field_of, seconds_to_utc_midnight
from connectors.registry import CONNECTORS
from core.config import ConnectionConfig
from core.errors import AuthError, DataError, RateLimited, TransientError
from core.ledger.keys import LedgerKeys
from core.ledger.memo import Memo
from core.ledger.tokens import TokenStore
from core.mapping.record import FieldResult, MappedRecord
from core.vocabulary import DeadCategory

BASE = "https://acme.pipedrive.com"
TOKEN = "fake-pipedrive-api-token"
ENV = {
    "PD_TOKEN": TOKEN,
    "PD_CLIENT_ID": "fake-pd-client-id",
    "PD_CLIENT_SECRET": "fake-pd-client-secret",
    "PD_REFRESH_TOKEN": "fake-pd-refresh-token",
}
API_TOKEN = {"type": "api_token", "token_env": "PD_TOKEN"}
OAUTH = {
    "type": "oauth2",
    "client_id_env": "PD_CLIENT_ID",
    "client_secret_env": "PD_CLIENT_SECRET",
    "refresh_token_env": "PD_REFRESH_TOKEN",
    "token_url": "https://oauth.pipedrive.com/oauth/token",
}


class Recorder(FakeTransport):
    """The fake, with every request's method and URL kept."""

    def __init__(self, app: FakePipedrive) -> None:
        super().__init__(app)
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(f"{request.method} {request.url}")
        return super().handle_request(request)


class Env:
    def __init__(self, auth: dict[str, Any] | None = None, **fake_options: Any) -> None:
        self.fake = FakePipedrive(api_domain="https://acme-api.pipedrive.com", **fake_options)
        self.transport = Recorder(self.fake)
        redis = fakeredis.FakeRedis()
        keys = LedgerKeys("t")
        self.tokens = TokenStore(redis, keys)
        self.memo = Memo(redis, keys)
        self.connector = self.build(auth or API_TOKEN)

    def build(
        self, auth: dict[str, Any], transport: httpx.BaseTransport | None = None
    ) -> PipedriveConnector:
        connection = ConnectionConfig(
            name="pipedrive", connector="pipedrive", base_url=BASE, auth=auth
        )
        return PipedriveConnector(
            connection,
            ENV,
            transport=transport or self.transport,
            tokens=self.tokens,
            memo=self.memo,
        )

    def calls(self) -> list[str]:
        """The API calls made (not the token endpoint's)."""
        return [u for u in self.transport.urls if "/api/v2/" in u]


@pytest.fixture
def env() -> Env:
    return Env()


def person(email: str, name: str = "Ada Lovelace", **more: Any) -> MappedRecord:
    owners = dict.fromkeys(more.pop("_target", ()), "target")
    values = {"email": email, "name": name, **more}
    return MappedRecord(
        "m",
        "pipedrive",
        "persons",
        "upsert",
        "email",
        email.strip().lower(),
        tuple(FieldResult(k, v, v, owners.get(k, "source")) for k, v in values.items()),
    )


def organization(name: str) -> MappedRecord:
    return MappedRecord(
        "m",
        "pipedrive",
        "organizations",
        "upsert",
        "name",
        name.strip(),
        (FieldResult("name", name, name, "source"),),
    )


def test_the_registry_knows_the_pipedrive_connector() -> None:
    assert CONNECTORS["pipedrive"] is PipedriveConnector


# values -------------------------------------------------------------------------------------
def test_plain_email_and_phone_become_labelled_lists_with_one_primary() -> None:
    body = wire({"email": "ada@x.com", "phone": "+44 20 7946 0000", "name": "Ada"})
    assert body == {
        "emails": [{"value": "ada@x.com", "primary": True, "label": "work"}],
        "phones": [{"value": "+44 20 7946 0000", "primary": True, "label": "work"}],
        "name": "Ada",
    }
    several = labelled(["a@x.com", " b@x.com ", "", None])
    assert [i["primary"] for i in several] == [True, False]
    assert [i["value"] for i in several] == ["a@x.com", "b@x.com"]


def test_ids_are_integers_and_hashes_are_custom_fields() -> None:
    custom = "a" * 40
    body = wire({"org_id": "17", "owner_id": 3, custom: "Gold"})
    assert body == {"org_id": 17, "owner_id": 3, "custom_fields": {custom: "Gold"}}


def test_a_record_reads_back_as_the_mapping_names_its_fields() -> None:
    record = {
        "id": 1,
        "emails": [
            {"value": "home@x.com", "primary": False, "label": "home"},
            {"value": "work@x.com", "primary": True, "label": "work"},
        ],
        "phones": [],
        "custom_fields": {"b" * 40: "Silver"},
    }
    shown = flat(record)
    assert (shown["email"], shown["phone"], shown["b" * 40]) == ("work@x.com", None, "Silver")


# find-or-create ---------------------------------------------------------------------------
def test_search_then_create_then_update_and_a_seen_record_needs_no_search(env: Env) -> None:
    created = env.connector.deliver(person(" Ada@Example.COM ", phone="+1 555 0100"))
    assert created.operation == "created"
    [stored] = env.fake.records("persons")
    assert stored["emails"] == [{"value": "Ada@Example.COM", "primary": True, "label": "work"}]
    assert stored["phones"] == [{"value": "+1 555 0100", "primary": True, "label": "work"}]
    assert [c.split("?")[0] for c in env.calls()] == [
        f"GET {BASE}/api/v2/persons/search",
        f"POST {BASE}/api/v2/persons",
    ]
    assert "fields=email" in env.calls()[0] and "exact_match=true" in env.calls()[0]
    before = len(env.calls())
    updated = env.connector.deliver(person("ada@example.com", name="Ada King"))
    assert (updated.operation, updated.record_id) == ("updated", created.record_id)
    assert env.calls()[before:] == [f"PATCH {BASE}/api/v2/persons/{created.record_id}"]
    assert [p["name"] for p in env.fake.records("persons")] == ["Ada King"]
    assert env.fake.violations() == []


def test_a_person_made_by_a_rep_is_found_by_email_whatever_its_case(env: Env) -> None:
    rep = env.fake.add_record(
        "persons",
        name="Grace",
        emails=[
            {"value": "Grace@Navy.mil", "primary": True, "label": "work"},
            {"value": "grace@home.org", "primary": False, "label": "home"},
        ],
    )
    result = env.connector.deliver(person("grace@navy.mil", name="Grace Hopper"))
    assert (result.operation, result.record_id) == ("updated", str(rep))
    [stored] = env.fake.records("persons")
    # the matched email is not sent again: the rep's other address stays
    assert [e["value"] for e in stored["emails"]] == ["Grace@Navy.mil", "grace@home.org"]


def test_several_persons_for_one_email_are_an_ambiguous_match_never_a_guess(env: Env) -> None:
    for name in ("One", "Two"):
        env.fake.add_record("persons", name=name, emails=[{"value": "twin@x.com", "primary": True}])
    with pytest.raises(DataError) as caught:
        env.connector.deliver(person("twin@x.com"))
    assert caught.value.category == DeadCategory.AMBIGUOUS_MATCH
    assert caught.value.problems[0]["candidates"] == ["1", "2"]
    assert len(env.fake.records("persons")) == 2


def test_a_remembered_id_pipedrive_no_longer_has_is_searched_again(env: Env) -> None:
    first = env.connector.deliver(person("gone@x.com"))
    with env.fake.state.lock:  # merged away in Pipedrive's UI
        env.fake.state.records["persons"].clear()
    again = env.connector.deliver(person("gone@x.com", name="Back Again"))
    assert again.operation == "created" and again.record_id != first.record_id
    assert [p["name"] for p in env.fake.records("persons")] == ["Back Again"]


def test_a_target_owned_field_is_read_once_and_never_overwritten(env: Env) -> None:
    env.fake.add_record(
        "persons",
        name="Rep",
        job_title="Rep's title",
        emails=[{"value": "owned@x.com", "primary": True}],
    )
    record = person("owned@x.com", job_title="Source title", _target=("job_title",))
    result = env.connector.deliver(record)
    assert result.skipped_fields == ("job_title",)
    assert env.fake.records("persons")[0]["job_title"] == "Rep's title"


def test_an_organization_is_found_by_name_or_created_and_the_person_linked(env: Env) -> None:
    existing = env.fake.add_record("organizations", name="Acme Ltd")
    ids = env.connector.find_or_create([organization("acme ltd"), organization("Initech")])
    assert ids[0] == str(existing) and isinstance(ids[1], str)
    names = sorted(o["name"] for o in env.fake.records("organizations"))
    assert names == ["Acme Ltd", "Initech"]  # the found one is linked as it is
    linked = person("linked@x.com").linked("org_id", str(ids[1]))
    env.connector.deliver(linked)
    assert env.fake.records("persons")[0]["org_id"] == int(str(ids[1]))
    assert env.fake.violations() == []


def test_fetch_reads_a_record_and_a_missing_one_is_source_record_missing(env: Env) -> None:
    made = env.connector.deliver(person("fetch@x.com", phone="123"))
    fetched = env.connector.fetch("persons", str(made.record_id), ())
    assert (fetched["email"], fetched["phone"], fetched["name"]) == (
        "fetch@x.com",
        "123",
        "Ada Lovelace",
    )
    with pytest.raises(DataError) as caught:
        env.connector.fetch("persons", "999", ())
    assert caught.value.category == DeadCategory.SOURCE_RECORD_MISSING


# auth -----------------------------------------------------------------------------------------
def test_the_api_token_travels_in_the_x_api_token_header() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "data": {"items": []}})

    env = Env()
    connector = env.build(API_TOKEN, httpx.MockTransport(answer))
    connector.search("persons", "email", "a@x.com")
    assert seen[0].headers["x-api-token"] == TOKEN and "authorization" not in seen[0].headers


def test_a_revoked_api_token_is_an_auth_error_at_once(env: Env) -> None:
    env.fake.fault(mode="revoke_api_token")
    with pytest.raises(AuthError) as caught:
        env.connector.deliver(person("revoked@x.com"))
    assert "rotate the API token" in str(caught.value)
    assert len(env.calls()) == 1  # no retry: a token cannot be renewed


def test_oauth_uses_basic_client_auth_and_calls_the_api_domain() -> None:
    env = Env(OAUTH)
    env.connector.deliver(person("oauth@x.com"))
    token_calls = [u for u in env.transport.urls if "/oauth/token" in u]
    assert token_calls == ["POST https://oauth.pipedrive.com/oauth/token"]
    assert all(
        c.startswith(("GET https://acme-api.pipedrive.com/api/v2/", "POST https://acme-api"))
        for c in env.calls()
    )
    [entry] = [e for e in env.fake.log() if e["operation"] == "oauth.token"]
    assert "client_id" not in entry["body"]  # the client authenticated by HTTP Basic
    assert env.fake.state.token_errors == {}


def test_an_expired_oauth_token_gets_one_refresh_and_one_retry() -> None:
    env = Env(OAUTH)
    env.connector.deliver(person("first@x.com"))
    env.fake.fault(mode="expire_tokens")
    result = env.connector.deliver(person("second@x.com"))
    assert result.operation == "created"
    assert env.fake.state.token_refreshes == 2


def test_a_revoked_refresh_token_is_an_auth_error() -> None:
    env = Env(OAUTH)
    env.fake.fault(mode="revoke_refresh_token")
    with pytest.raises(AuthError) as caught:
        env.connector.deliver(person("nope@x.com"))
    assert "Invalid grant" in str(caught.value)


# errors -------------------------------------------------------------------------------------
def envelope(message: str, **more: Any) -> dict[str, Any]:
    # https://pipedrive.readme.io/docs/core-api-concepts-responses
    return {
        "success": False,
        "error": message,
        "error_info": "Please check developers.pipedrive.com",
        "data": None,
        "additional_data": None,
        **more,
    }


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> PipedriveConnector:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers or {})

    return Env().build(API_TOKEN, httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "words"),
    [
        (401, envelope("unauthorized access", errorCode=401), {}, AuthError, "rotate"),
        # core-api-concepts-http-status-codes: 402 the company account is not open
        (402, envelope("Company account is not open"), {}, AuthError, "account"),
        (
            403,
            envelope("Forbidden", code="feature_capping_deals_limit"),
            {},
            AuthError,
            "feature_capping",
        ),
        (404, envelope("Entity was not found"), {}, DataError, "Entity was not found"),
        (410, envelope("Gone"), {}, DataError, "Gone"),
        (400, envelope("Name must be given."), {}, DataError, "Name must be given"),
        (500, envelope("Internal Server Error", code="ERR_UNKNOWN"), {}, TransientError, "500"),
        (503, envelope("Service Unavailable"), {}, TransientError, "503"),
        (429, envelope("Rate limit"), {"Retry-After": "7"}, RateLimited, "Retry-After"),
    ],
)
def test_each_answer_becomes_its_error_class(
    status: int, body: Any, headers: dict[str, str], expected: type, words: str
) -> None:
    connector = answering(status, body, headers)
    with pytest.raises(expected) as caught:
        connector.deliver(person("x@x.com"))
    assert type(caught.value) is expected and words in str(caught.value)


def test_a_validation_error_names_the_field() -> None:
    assert field_of("Validation failed: org_id: Organization 9 not found") == "org_id"
    assert field_of("Validation failed: emails[0].value: Expected string") == "emails"
    assert field_of("Name must be given.") == "name"
    assert field_of("Something else") is None


def test_a_missing_name_is_a_dead_letter_naming_the_field(env: Env) -> None:
    nameless = MappedRecord(
        "m",
        "pipedrive",
        "persons",
        "upsert",
        "email",
        "n@x.com",
        (FieldResult("email", "n@x.com", "n@x.com", "source"),),
    )
    with pytest.raises(DataError) as caught:
        env.connector.deliver(nameless)
    assert caught.value.category == DeadCategory.REJECTED_BY_TARGET
    assert caught.value.problems[0]["field"] == "name"


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"Retry-After": "12"}, 12, 12),
        ({"x-ratelimit-reset": "2", "x-ratelimit-remaining": "0"}, 2, 2),
        ({}, 2, 2),
    ],
)
def test_a_429_cools_down_for_what_its_headers_say(
    headers: dict[str, str], low: float, high: float
) -> None:
    with pytest.raises(RateLimited) as caught:
        answering(429, envelope("Request over limit"), headers).deliver(person("r@x.com"))
    assert caught.value.retry_after is not None and low <= caught.value.retry_after <= high


def test_a_spent_daily_token_budget_cools_down_until_midnight_utc() -> None:
    env = Env(daily_tokens=25)  # a search costs 20, a person 5: the next request is refused
    env.connector.deliver(person("budget@x.com"))
    with pytest.raises(RateLimited) as caught:
        env.connector.deliver(person("over@x.com"))
    assert caught.value.retry_after == pytest.approx(seconds_to_utc_midnight(), abs=5)
    assert "daily token budget" in str(caught.value)
    usage = env.memo.usage("pipedrive")  # for /metrics (noted at most once a second)
    assert usage["limit"] == 25 and usage["used"] >= 20


def test_a_429_storm_from_the_fake_with_and_without_retry_after(env: Env) -> None:
    env.fake.fault(mode="rate_limit", count=1, retry_after=9)
    with pytest.raises(RateLimited) as with_hint:
        env.connector.deliver(person("storm@x.com"))
    assert with_hint.value.retry_after == 9
    env.fake.fault(mode="rate_limit", count=1)
    with pytest.raises(RateLimited) as without:
        env.connector.deliver(person("storm@x.com"))
    assert without.value.retry_after is not None and 1 <= without.value.retry_after <= 2
    assert env.connector.deliver(person("storm@x.com")).operation == "created"


def test_a_5xx_and_a_dropped_connection_are_transient(env: Env) -> None:
    env.fake.fault(mode="error5xx", count=1, status=503)
    with pytest.raises(TransientError):
        env.connector.deliver(person("flaky@x.com"))
    env.fake.fault(mode="drop", count=1)
    with pytest.raises(TransientError):
        env.connector.deliver(person("flaky@x.com"))
    assert env.connector.deliver(person("flaky@x.com")).operation == "created"
    assert len(env.fake.records("persons")) == 1


def test_a_basic_client_auth_header_is_what_the_token_endpoint_gets() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(
                200,
                json={
                    "access_token": "a",
                    "expires_in": 3600,
                    "api_domain": "https://c.pipedrive.com/",
                },
            )
        return httpx.Response(200, json={"success": True, "data": {"items": []}})

    connector: Callable[..., PipedriveConnector] = Env().build
    connector(OAUTH, httpx.MockTransport(answer)).search("persons", "email", "a@x.com")
    expected = base64.b64encode(b"fake-pd-client-id:fake-pd-client-secret").decode()
    assert seen[0].headers["authorization"] == f"Basic {expected}"
    assert str(seen[1].url).startswith("https://c.pipedrive.com/api/v2/persons/search")
    assert seen[1].headers["authorization"] == "Bearer a"
