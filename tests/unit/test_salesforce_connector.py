"""The Salesforce connector (connectors/salesforce.py) against the fake Salesforce the package
ships (connectors/fakes/salesforce/), in-process behind its httpx transport, with the ledger's
token store and memo on fakeredis. Salesforce's answers are cited in the fake's modules; where
a test needs an answer the fake does not give, the answer is written here with its source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import httpx
import pytest

from connectors.fakes.salesforce import FakeSalesforce
from connectors.fakes.transport import FakeTransport
from connectors.registry import CONNECTORS
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_errors import duplicate_matches, error_for
from connectors.salesforce_session import soql_literal
from core.config import ConnectionConfig
from core.config.model import ObjectSpec, TargetField
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.ledger.keys import LedgerKeys
from core.ledger.memo import Memo
from core.ledger.tokens import TokenStore
from core.mapping.record import FieldResult, MappedRecord
from core.vocabulary import DeadCategory

LOGIN = "https://login.salesforce.com"
ENV = {
    "SF_CLIENT_ID": "fake-sf-client-id",
    "SF_CLIENT_SECRET": "fake-sf-client-secret",
    "SF_REFRESH_TOKEN": "fake-sf-refresh-token",
}


class Recorder(FakeTransport):
    """The fake, with every request's URL kept (which host a call went to)."""

    def __init__(self, app: FakeSalesforce) -> None:
        super().__init__(app)
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(f"{request.method} {request.url}")
        return super().handle_request(request)


class Env:
    def __init__(self, auth: dict[str, Any] | None = None, **fake_options: Any) -> None:
        self.fake = FakeSalesforce(**fake_options)
        self.transport = Recorder(self.fake)
        redis = fakeredis.FakeRedis()
        keys = LedgerKeys("t")
        self.tokens = TokenStore(redis, keys)
        self.memo = Memo(redis, keys)
        self.auth = auth or {
            "type": "oauth2",
            "client_id_env": "SF_CLIENT_ID",
            "client_secret_env": "SF_CLIENT_SECRET",
            "refresh_token_env": "SF_REFRESH_TOKEN",
        }
        self.connector = self.build()

    def build(self, **options: Any) -> SalesforceConnector:
        connection = ConnectionConfig(
            name="salesforce",
            connector="salesforce",
            base_url=LOGIN,
            login_url=LOGIN,
            auth=self.auth,
            options=options,
            objects={
                "Contact": ObjectSpec(
                    "Contact", {"Birthdate": TargetField("Birthdate", type="date")}
                )
            },
        )
        return SalesforceConnector(
            connection, ENV, transport=self.transport, tokens=self.tokens, memo=self.memo
        )

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("Email")): r for r in self.fake.records("Contact")}


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.connector.close()
    assert e.fake.violations() == [], "the connector sent a request Salesforce would refuse"


def contact(email: str, last: str = "Lovelace", **more: Any) -> MappedRecord:
    fields = {"Email": email.strip().lower(), "LastName": last, **more}
    owners = {"Title": "target"}
    return MappedRecord(
        mapping="m",
        connection="salesforce",
        object="Contact",
        action="upsert",
        match_field="Email",
        match_value=email.strip().lower(),
        fields=tuple(FieldResult(k, v, v, owners.get(k, "source")) for k, v in fields.items()),
    )


def account(name: str) -> MappedRecord:
    return MappedRecord(
        mapping="m",
        connection="salesforce",
        object="Account",
        action="upsert",
        match_field="Name",
        match_value=name,
        fields=(FieldResult("Name", name, name, "source"),),
    )


def test_the_registry_knows_the_salesforce_connector() -> None:
    assert CONNECTORS["salesforce"] is SalesforceConnector


# auth ---------------------------------------------------------------------------------------
def test_it_logs_in_at_login_url_and_calls_the_instance_url(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com"))
    token_calls = [u for u in env.transport.urls if "oauth2/token" in u]
    data_calls = [u for u in env.transport.urls if "/services/data/" in u]
    assert token_calls == [f"POST {LOGIN}/services/oauth2/token"]
    assert data_calls and all(
        u.split(" ")[1].startswith("https://fake.my.salesforce.com/services/data/v62.0/")
        for u in data_calls
    )
    assert env.tokens.get("salesforce").instance_url == "https://fake.my.salesforce.com"


def test_api_version_is_the_version_in_every_path() -> None:
    e = Env()
    e.connector = SalesforceConnector(
        ConnectionConfig(
            name="salesforce",
            connector="salesforce",
            base_url=LOGIN,
            login_url=LOGIN,
            auth=e.auth,
            api_version="58.0",
        ),
        ENV,
        transport=e.transport,
        tokens=e.tokens,
        memo=e.memo,
    )
    e.connector.deliver(contact("ada@example.com"))
    data_calls = [u for u in e.transport.urls if "/services/data/" in u]
    assert data_calls and all("/services/data/v58.0/" in u for u in data_calls)


def test_an_expired_session_gets_one_refresh_and_one_retry(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com"))
    env.fake.fault(mode="expire_sessions")
    result = env.connector.deliver(contact("grace@example.com", "Hopper"))
    assert result.operation == "created"
    assert env.fake.state.stats()["token_refreshes"] == 2
    assert set(env.contacts()) == {"ada@example.com", "grace@example.com"}


def test_a_revoked_refresh_token_is_an_auth_error(env: Env) -> None:
    env.connector.deliver(contact("ada@example.com"))
    env.fake.fault(mode="revoke_refresh_token")
    env.fake.fault(mode="expire_sessions")
    with pytest.raises(AuthError, match="invalid_grant"):
        env.connector.deliver(contact("grace@example.com", "Hopper"))


def test_a_rotated_refresh_token_is_stored_with_its_access_token() -> None:
    e = Env(rotate_refresh_tokens=True)
    e.connector.deliver(contact("ada@example.com"))
    state = e.tokens.get("salesforce")
    assert state.refresh_token != ENV["SF_REFRESH_TOKEN"]
    assert e.fake.state.refresh_tokens == {state.refresh_token}
    e.fake.fault(mode="expire_sessions")  # the next refresh must use the rotated token
    assert e.connector.deliver(contact("grace@example.com", "Hopper")).operation == "created"


def test_the_client_credentials_flow_needs_no_refresh_token() -> None:
    e = Env(
        auth={
            "type": "client_credentials",
            "client_id_env": "SF_CLIENT_ID",
            "client_secret_env": "SF_CLIENT_SECRET",
        }
    )
    assert e.connector.deliver(contact("ada@example.com")).operation == "created"
    assert e.tokens.get("salesforce").refresh_token == ""
    refused = Env(auth=e.auth, client_credentials=False)
    with pytest.raises(AuthError, match="client credentials"):
        refused.connector.deliver(contact("ada@example.com"))


# writes ---------------------------------------------------------------------------------------
def test_find_by_soql_then_create_then_update_the_same_record(env: Env) -> None:
    first = env.connector.deliver(contact("  Ada@Example.COM "))
    again = env.connector.deliver(contact("ada@example.com", "Byron"))
    assert (first.operation, again.operation) == ("created", "updated")
    assert first.record_id == again.record_id
    [only] = env.fake.records("Contact")
    assert only["LastName"] == "Byron"


def test_a_rep_edited_title_is_never_overwritten(env: Env) -> None:
    created = env.connector.deliver(contact("ada@example.com", Title="Engineer"))
    assert created.record_id
    env.fake.edit_record("Contact", created.record_id, Title="VP Engineering")
    result = env.connector.deliver(contact("ada@example.com", Title="Intern"))
    assert result.skipped_fields == ("Title",)
    assert env.contacts()["ada@example.com"]["Title"] == "VP Engineering"


def test_several_records_for_one_key_are_an_ambiguous_match_never_a_guess(env: Env) -> None:
    ids = [
        env.fake.add_record("Contact", LastName=f"Twin{i}", Email="twin@example.com")
        for i in (1, 2)
    ]
    with pytest.raises(DataError) as caught:
        env.connector.deliver(contact("twin@example.com"))
    assert caught.value.category == DeadCategory.AMBIGUOUS_MATCH
    assert sorted(caught.value.problems[0]["candidates"]) == sorted(ids)
    assert len(env.fake.records("Contact")) == 2


def test_an_external_id_match_upserts_and_300_is_ambiguous(env: Env) -> None:
    record = MappedRecord(
        mapping="m",
        connection="salesforce",
        object="Contact",
        action="upsert",
        match_field="HubSpot_Id__c",
        match_value="501",
        fields=(FieldResult("LastName", "X", "Lovelace", "source"),),
        external_id=True,
    )
    assert env.connector.deliver(record).operation == "created"
    assert env.connector.deliver(record).operation == "updated"
    patches = [u for u in env.transport.urls if "/sobjects/Contact/HubSpot_Id__c/501" in u]
    assert len(patches) == 2 and all(u.startswith("PATCH") for u in patches)
    env.fake.add_record("Contact", LastName="Other", HubSpot_Id__c="501")
    with pytest.raises(DataError) as caught:
        env.connector.deliver(record)
    assert caught.value.category == DeadCategory.AMBIGUOUS_MATCH
    assert len(caught.value.problems[0]["candidates"]) == 2


def test_quotes_and_backslashes_in_a_match_value_cannot_change_the_query(env: Env) -> None:
    assert soql_literal("O'Brien \\ Sons") == "'O\\'Brien \\\\ Sons'"
    assert soql_literal("a\nb") == "'a\\nb'"
    tricky = ["O'Brien & Sons", "Back\\slash Ltd", "x' OR Name != 'y"]
    first = env.connector.find_or_create([account(n) for n in tricky])
    again = env.connector.find_or_create([account(n) for n in tricky])
    assert all(isinstance(i, str) for i in first) and first == again
    assert sorted(r["Name"] for r in env.fake.records("Account")) == sorted(tricky)


def test_a_backlog_goes_through_collections_with_per_record_results(env: Env) -> None:
    records = [contact(f"user{i}@example.com", f"User{i}") for i in range(250)]
    records[7] = contact("user7@example.com", "")  # LastName is required
    before = env.fake.state.stats()["api_calls"]
    outcomes = env.connector.deliver_batch(records)
    calls = env.fake.state.stats()["api_calls"] - before
    assert calls <= 4  # one lookup, two collection creates (200 + 50), maybe a second lookup
    assert isinstance(outcomes[7], DataError) and outcomes[7].problems[0]["field"] == "LastName"
    assert "REQUIRED_FIELD_MISSING" in str(outcomes[7])
    assert all(o.operation == "created" for i, o in enumerate(outcomes) if i != 7)  # type: ignore[union-attr]
    updated = env.connector.deliver_batch(records[:10])
    assert [getattr(o, "operation", o) for i, o in enumerate(updated) if i != 7] == ["updated"] * 9


def test_one_key_twice_in_a_batch_makes_one_record(env: Env) -> None:
    outcomes = env.connector.deliver_batch(
        [contact("same@example.com", "One"), contact("SAME@example.com", "Two")]
    )
    assert [o.operation for o in outcomes] == ["created", "updated"]  # type: ignore[union-attr]
    assert env.contacts()["same@example.com"]["LastName"] == "Two"


def test_values_go_out_in_salesforce_formats(env: Env) -> None:
    env.connector.deliver(
        contact("ada@example.com", Interests__c=["Product", "Events"], Birthdate=-4_717_440_000_000)
    )
    stored = env.contacts()["ada@example.com"]
    assert stored["Interests__c"] == "Product;Events"
    assert stored["Birthdate"] == "1820-07-06"


# errors, per errorCode ----------------------------------------------------------------------------
def test_request_limit_exceeded_is_a_rate_limit_with_a_backing_off_probe() -> None:
    e = Env(daily_limit=3)
    e.connector = e.build(limit_probe_max_seconds=100)
    e.connector.deliver(contact("ada@example.com"))  # lookup + create: 2 calls
    waits = []
    for _ in range(4):
        with pytest.raises(RateLimited) as caught:
            e.connector.deliver(contact("b@example.com"))
        waits.append(caught.value.retry_after)
        assert caught.value.status == 403
    assert waits == [30.0, 60.0, 100.0, 100.0]
    e.fake.handle("POST", "/_control/limits", "", {}, b'{"api_used": 0}')
    e.connector.deliver(contact("c@example.com"))  # the probe passes: backoff starts over
    e.fake.handle("POST", "/_control/limits", "", {}, b'{"api_used": 99}')
    with pytest.raises(RateLimited) as caught:
        e.connector.deliver(contact("d@example.com"))
    assert caught.value.retry_after == 30.0
    assert e.memo.usage("salesforce")["limit"] == 3


def answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "https://x"))


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "UNABLE_TO_LOCK_ROW", TransientError),
        (500, "UNABLE_TO_LOCK_ROW", TransientError),
        (503, "SERVER_UNAVAILABLE", TransientError),
        (400, "REQUIRED_FIELD_MISSING", DataError),
        (400, "INVALID_EMAIL_ADDRESS", DataError),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", DataError),
        (400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", DataError),
        (400, "STRING_TOO_LONG", DataError),
        (403, "REQUEST_LIMIT_EXCEEDED", RateLimited),
        (403, "INSUFFICIENT_PRIVILEGES", AuthError),
        (401, "INVALID_SESSION_ID", AuthError),
    ],
)
def test_errors_are_classified_by_their_code_not_their_status(
    env: Env, status: int, code: str, kind: type[HubError]
) -> None:
    # errorcodes.htm: an array of {message, errorCode, fields}
    response = answer(
        status, [{"message": f"{code} happened", "errorCode": code, "fields": ["Email"]}]
    )
    with pytest.raises(HubError) as caught:
        env.connector.classify(response)
    assert type(caught.value) is kind
    if kind is DataError:
        assert caught.value.problems[0]["field"] == "Email"  # type: ignore[attr-defined]


def test_a_duplicate_rule_is_a_dead_letter_carrying_its_matches(env: Env) -> None:
    rep_made = env.fake.add_record(
        "Contact", FirstName="Ada", LastName="Lovelace", Email="old@example.com"
    )
    with pytest.raises(DataError) as caught:
        env.connector.deliver(contact("new@example.com", FirstName="Ada"))
    [problem] = caught.value.problems
    assert problem["code"] == "DUPLICATES_DETECTED"
    assert [d["id"] for d in problem["duplicates"]] == [rep_made]
    # both spellings Salesforce uses ([observed] captures spell it "duplicateResut")
    result = {
        "matchResults": [{"entityType": "Contact", "matchRecords": [{"record": {"Id": "003X"}}]}]
    }
    for key in ("duplicateResult", "duplicateResut"):
        assert [m["id"] for m in duplicate_matches({key: result})] == ["003X"]
    error = error_for(
        {"statusCode": "DUPLICATES_DETECTED", "message": "dup", "duplicateResult": result},
        status=200,
        text="",
    )
    assert isinstance(error, DataError)


def test_a_row_lock_in_a_collection_is_retried_not_dead(env: Env) -> None:
    env.fake.fault(mode="row_lock", count=1)
    outcomes = env.connector.deliver_batch([contact("a@example.com"), contact("b@example.com")])
    assert isinstance(outcomes[0], TransientError) and "UNABLE_TO_LOCK_ROW" in str(outcomes[0])


def test_fetch_reads_a_record_and_a_missing_one_is_source_record_missing(env: Env) -> None:
    record_id = env.fake.add_record("Contact", LastName="Lovelace", Email="ada@example.com")
    fetched = env.connector.fetch("Contact", record_id, ["LastName", "Email"])
    assert fetched["Email"] == "ada@example.com"
    with pytest.raises(DataError) as caught:
        env.connector.fetch("Contact", "0035g000000GoneAAA", ["LastName"])
    assert caught.value.category == DeadCategory.SOURCE_RECORD_MISSING


def test_fetching_many_is_one_query(env: Env) -> None:
    ids = [env.fake.add_record("Contact", LastName=f"L{i}", Email=f"p{i}@x.com") for i in range(3)]
    before = env.fake.state.stats()["api_calls"]
    found = env.connector.fetch_many("Contact", [*ids, "0035g000000GoneAAA"], ["LastName"])
    assert env.fake.state.stats()["api_calls"] - before == 1
    assert [found[i]["LastName"] for i in ids] == ["L0", "L1", "L2"]  # type: ignore[index]
    missing = found["0035g000000GoneAAA"]
    assert isinstance(missing, DataError)
    assert missing.category == DeadCategory.SOURCE_RECORD_MISSING


def test_while_the_limit_is_refused_one_request_probes_and_the_others_wait() -> None:
    e = Env(daily_limit=2)
    other_worker = e.build()  # another process: the same fake and the same ledger memo
    e.connector.deliver(contact("ada@example.com"))  # lookup + create: the budget is spent
    with pytest.raises(RateLimited):
        e.connector.deliver(contact("b@example.com"))
    assert e.memo.limited("salesforce")
    assert e.memo.take_probe("salesforce", 30)  # a probe is under way elsewhere
    calls = e.fake.state.stats()["requests"]
    with pytest.raises(RateLimited) as waiting:
        other_worker.deliver(contact("c@example.com"))
    assert waiting.value.retry_after == 2.0 and "probing" in str(waiting.value)
    assert e.fake.state.stats()["requests"] == calls  # it sent nothing
    e.memo.probe_done("salesforce")
    e.fake.handle("POST", "/_control/limits", "", {}, b'{"daily_limit": 100}')
    assert other_worker.deliver(contact("c@example.com")).operation == "created"  # the probe
    assert not e.memo.limited("salesforce")  # it passed: every worker drains at once
