"""The HubSpot connector (connectors/hubspot.py) against the fake HubSpot the package ships
(connectors/fakes/hubspot/), in-process behind its httpx transport: HubSpot's own answers,
checked against HubSpot's request schemas (tests assert the connector never sent a request
HubSpot would refuse for its shape: `fake.violations()`).

Where a test needs an answer the fake does not give by itself (an unusual but documented
shape, a timeout, a scope error), `fake.script` answers instead, and where HubSpot is free to
answer differently than the fake does (results in another order, without trace ids),
`fake.rewrite` changes the fake's answer. Each such answer is shaped after HubSpot's own
documentation or SDKs; the source is cited next to each one:
  [errors]   https://developers.hubspot.com/docs/api-reference/error-handling (also
             https://developers.hubspot.com/docs/faq/api-error-responses): {status, message,
             correlationId, category, errors[]}; 207 multi-status for batch writes that carry
             an objectWriteTraceId per input
  [upsert]   https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
             and HubSpot/hubspot-api-python hubspot/crm/contacts/models/
             simple_public_upsert_object.py (results[].new, .objectWriteTraceId),
             batch_response_simple_public_upsert_object_with_errors.py (status COMPLETE,
             numErrors, errors: list[StandardError]) and standard_error.py (context:
             dict(str, list[str]))
  [usage]    429 {status, message, errorType: RATE_LIMIT, correlationId, policyName DAILY |
             TEN_SECONDLY_ROLLING}, the daily limit resetting at midnight in the account's time
             zone, and the X-HubSpot-RateLimit-* headers:
             https://developers.hubspot.com/docs/api/usage-details and
             https://developers.hubspot.com/changelog/2018-11-06-rate-limit-information-headers-will-be-included-in-http-responses;
             TEN_SECONDLY_ROLLING as the SDK tests it: HubSpot/hubspot-api-nodejs
             src/services/decorators/RetryDecorator.ts
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import connectors.hubspot as hubspot_module
from connectors.base import WriteResult
from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.hubspot.properties import PropError
from connectors.fakes.hubspot.texts import property_error_body
from connectors.fakes.transport import FakeTransport
from connectors.hubspot import BATCH_LIMIT, HubSpotConnector, property_problems
from connectors.registry import CONNECTORS
from core.config import ConnectionConfig, load_config
from core.errors import AuthError, DataError, HubError, RateLimited, TransientError
from core.mapping import map_event
from core.mapping.engine import FieldResult, MappedRecord

API = "https://api.hubapi.com"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CORRELATION = "a43683b0-5717-4ceb-80b4-104d02915d8c"
# properties of this account beyond HubSpot's defaults (as created in its settings)
CUSTOM = ("contacts:age:number", "contacts:vip:bool", "contacts:tags")
Handler = Callable[[httpx.Request], httpx.Response | None]


def hubspot_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's common error body [errors]."""
    return {
        "status": "error",
        "message": message,
        "correlationId": CORRELATION,
        "category": category,
        **extra,
    }


def validation_message(*problems: tuple[str, str, str]) -> str:
    """The "Property values were not valid: [...]" message form of a VALIDATION_ERROR
    [errors]: a JSON list of {isValid, message, error, name} embedded in the message.
    `problems`: (property name, error code, message)."""
    listed = [
        {"isValid": False, "message": message, "error": code, "name": name}
        for name, code, message in problems
    ]
    return "Property values were not valid: " + json.dumps(listed)


class HubSpot:
    """The fake HubSpot in-process, the private-app token TOKEN valid, every request kept.

    `script`: consulted first for every request; answers instead when it returns a response.
    `rewrite`: changes the JSON body of the fake's batch answers (HubSpot's freedom).
    """

    def __init__(self, **config: Any) -> None:
        self.app = FakeHubSpot(custom_properties=CUSTOM, **{"private_app_token": TOKEN, **config})
        self.requests: list[httpx.Request] = []
        self.script: Handler | None = None
        self.rewrite: Callable[[dict[str, Any]], None] | None = None
        self._transport = FakeTransport(self.app)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script is not None and (answer := self.script(request)) is not None:
            return answer
        response = self._transport.handle_request(request)
        if self.rewrite is not None and "/batch/" in request.url.path and response.content:
            body = json.loads(response.content)
            self.rewrite(body)
            return httpx.Response(response.status_code, json=body, request=request)
        return response

    # state --------------------------------------------------------------------------------
    def add(self, obj: str = "contacts", **props: str) -> str:
        return self.app.add_record(obj, **props)

    def records(self, obj: str = "contacts") -> dict[str, dict[str, Any]]:
        """id -> properties."""
        return {r["id"]: r["properties"] for r in self.app.records(obj)}

    def find(self, obj: str, prop: str, value: str) -> str | None:
        for record_id, props in self.records(obj).items():
            if (props.get(prop) or "").lower() == value.strip().lower():
                return record_id
        return None

    def props(self, record_id: str, obj: str = "contacts") -> dict[str, Any]:
        return self.records(obj)[record_id]

    def bodies(self, path_end: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith(path_end)]

    def violations(self) -> list[dict[str, Any]]:
        return self.app.violations()


def connector(fake: HubSpot, **options: Any) -> HubSpotConnector:
    connection = ConnectionConfig(
        name="hubspot",
        connector="hubspot",
        base_url=API,
        auth={"type": "bearer", "token_env": "HUBSPOT_TOKEN"},
        options=options,
    )
    return HubSpotConnector(
        connection, {"HUBSPOT_TOKEN": TOKEN}, transport=httpx.MockTransport(fake)
    )


def record(
    email: str = "ada@example.com",
    *,
    action: str = "upsert",
    obj: str = "contacts",
    match_field: str = "email",
    **fields: Any,
) -> MappedRecord:
    """A mapped record; a field given as (value, "target") is target-owned."""
    results = []
    for name, value in (fields or {"email": email, "firstname": "Ada"}).items():
        owner = "source"
        if isinstance(value, tuple):
            value, owner = value
        results.append(FieldResult(name=name, source_value=value, value=value, owner=owner))
    return MappedRecord(
        mapping="m",
        connection="hubspot",
        object=obj,
        action=action,
        match_field=match_field,
        match_value=email,
        fields=tuple(results),
    )


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


# upsert ---------------------------------------------------------------------------------
def test_an_upsert_is_one_batch_upsert_on_the_match_field_with_string_values() -> None:
    fake = HubSpot()
    result = connector(fake).deliver(
        record(email="ada@example.com", firstname="Ada", age=36, vip=True, tags=["a", "b"])
    )
    [request] = fake.requests
    assert request.method == "POST"
    assert str(request.url) == f"{API}/crm/v3/objects/contacts/batch/upsert"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "ada@example.com",
                # a documented input field [upsert]: per-record results and errors for this input
                "objectWriteTraceId": "t0",
                "properties": {
                    "firstname": "Ada",
                    "age": "36",
                    "vip": "true",
                    "tags": '["a", "b"]',
                },
            }
        ]
    }
    record_id = fake.find("contacts", "email", "ada@example.com")
    assert record_id is not None
    assert (result.operation, result.status, result.record_id) == ("created", 200, record_id)
    assert result.written_fields == ("firstname", "age", "vip", "tags")
    assert fake.props(record_id)["vip"] == "true"
    assert fake.violations() == []


def test_new_false_is_an_update_of_the_existing_record() -> None:
    fake = HubSpot()
    existing = fake.add(email="ada@example.com", firstname="A")
    result = connector(fake).deliver(record())
    assert (result.operation, result.record_id) == ("updated", existing)
    assert fake.props(existing)["firstname"] == "Ada"
    assert len(fake.records()) == 1  # never a second record


def test_a_record_built_from_a_mapping_is_upserted_on_its_normalised_email(tmp_path: Path) -> None:
    path = tmp_path / "crmhub.yaml"
    path.write_text(
        textwrap.dedent("""
        sources:
          stripe: {verify: {scheme: stripe, secret_env: STRIPE_SECRET}, event_id: id}
        connections:
          hubspot:
            connector: hubspot
            base_url: https://api.hubapi.com
            auth: {type: bearer, token_env: HUBSPOT_TOKEN}
        mappings:
          customer:
            source: stripe
            connection: hubspot
            object: contacts
            match: {field: email, from: data.object.email, normalize: email}
            fields:
              email: {from: data.object.email, transform: [email], required: true}
              firstname: data.object.name
    """)
    )
    config = load_config(
        path, {"STRIPE_SECRET": "whsec_x", "HUBSPOT_TOKEN": TOKEN}, connectors=CONNECTORS
    )
    mapped = map_event(
        config.mappings["customer"],
        {"data": {"object": {"email": " Ada@Example.COM ", "name": "Ada"}}},
    )
    fake = HubSpot()
    assert connector(fake).deliver(mapped).operation == "created"
    [body] = fake.bodies("/batch/upsert")
    assert body["inputs"][0]["idProperty"] == "email"
    assert body["inputs"][0]["id"] == "ada@example.com"
    assert body["inputs"][0]["properties"] == {"email": "ada@example.com", "firstname": "Ada"}


# field ownership ------------------------------------------------------------------------
def test_a_target_owned_field_is_read_first_and_kept_when_hubspot_has_a_value() -> None:
    fake = HubSpot()
    fake.add(email="ada@example.com", lifecyclestage="opportunity")
    result = connector(fake).deliver(
        record(email="ada@example.com", firstname="Ada", lifecyclestage=("customer", "target"))
    )
    read, upsert = fake.requests
    assert read.url.path == "/crm/v3/objects/contacts/batch/read"
    assert json.loads(read.content) == {
        "idProperty": "email",
        "properties": ["email", "lifecyclestage"],
        "inputs": [{"id": "ada@example.com"}],
    }
    assert upsert.url.path == "/crm/v3/objects/contacts/batch/upsert"
    assert json.loads(upsert.content)["inputs"][0]["properties"] == {"firstname": "Ada"}
    assert result.skipped_fields == ("lifecyclestage",)
    assert result.written_fields == ("firstname",)


@pytest.mark.parametrize("current", [None, ""])
def test_a_target_owned_field_is_written_when_hubspot_has_none(current: str | None) -> None:
    fake = HubSpot()
    if current is not None:
        fake.add(email="ada@example.com", lifecyclestage=current)
    result = connector(fake).deliver(
        record(email="ada@example.com", lifecyclestage=("customer", "target"))
    )
    assert [r.url.path.rsplit("/", 1)[-1] for r in fake.requests] == ["read", "upsert"]
    assert fake.bodies("/batch/upsert")[0]["inputs"][0]["properties"] == {
        "lifecyclestage": "customer"
    }
    assert result.skipped_fields == ()


#: a target's current value of a target-owned field -> whether the hub keeps it (one
#: definition of empty, core/mapping/empty.py: None and blank text are empty; HubSpot's
#: property values are strings, so lists and maps are the generic connector's tests)
EXISTING_VALUES = [
    (None, False),
    ("", False),
    ("   ", False),
    ("\t\n", False),
    ("opportunity", True),
    ("0", True),
    ("false", True),
]


@pytest.mark.parametrize(("current", "kept"), EXISTING_VALUES)
def test_a_single_write_and_a_batch_write_keep_exactly_the_same_fields(
    current: Any, kept: bool
) -> None:
    def owned(email: str) -> MappedRecord:
        return record(email=email, firstname="Ada", jobtitle=("Engineer", "target"))

    def hubspot() -> HubSpot:
        fake = HubSpot()
        for email in ("ada@example.com", "bob@example.com"):
            fake.add(email=email, **({} if current is None else {"jobtitle": current}))
        return fake

    single = connector(hubspot()).deliver(owned("ada@example.com"))
    batched = hubspot()
    outcomes = connector(batched).deliver_batch(
        [owned("ada@example.com"), owned("bob@example.com")]
    )
    [read, upsert] = [r.url.path.rsplit("/", 1)[-1] for r in batched.requests]
    assert (read, upsert) == ("read", "upsert")  # the batch path, not one by one
    expected = ("jobtitle",) if kept else ()
    assert single.skipped_fields == expected
    assert [o.skipped_fields for o in outcomes if isinstance(o, WriteResult)] == [expected] * 2
    written = [i["properties"] for i in batched.bodies("/batch/upsert")[0]["inputs"]]
    assert all(("jobtitle" in w) is not kept for w in written)


def test_update_only_skips_a_contact_hubspot_does_not_have() -> None:
    fake = HubSpot()
    result = connector(fake).deliver(record(action="update_only"))
    assert result.operation == "skipped"
    assert [r.url.path for r in fake.requests] == ["/crm/v3/objects/contacts/batch/read"]


# create_only ----------------------------------------------------------------------------
def test_create_only_posts_a_new_record() -> None:
    fake = HubSpot()
    result = connector(fake).deliver(
        record(action="create_only", email="ada@example.com", firstname="Ada")
    )
    [request] = fake.requests
    assert (request.method, request.url.path) == ("POST", "/crm/v3/objects/contacts")
    assert json.loads(request.content) == {
        "properties": {"email": "ada@example.com", "firstname": "Ada"}
    }
    assert (result.operation, result.status) == ("created", 201)
    assert result.record_id == fake.find("contacts", "email", "ada@example.com")


def test_create_only_conflict_updates_the_existing_id_and_never_creates_again() -> None:
    fake = HubSpot()
    existing = fake.add(email="ada@example.com", firstname="A")
    result = connector(fake).deliver(
        record(action="create_only", email="ada@example.com", firstname="Ada")
    )
    assert [(r.method, r.url.path) for r in fake.requests] == [
        ("POST", "/crm/v3/objects/contacts"),
        ("PATCH", f"/crm/v3/objects/contacts/{existing}"),
    ]
    assert json.loads(fake.requests[1].content) == {
        "properties": {"email": "ada@example.com", "firstname": "Ada"}
    }
    assert (result.operation, result.record_id, result.status) == ("updated", existing, 200)
    assert len(fake.records()) == 1
    assert fake.props(existing)["firstname"] == "Ada"


def test_a_conflict_without_an_existing_id_is_a_data_error_not_a_create() -> None:
    fake = HubSpot()
    # a 409 whose message names no record [errors]
    fake.script = answering(409, hubspot_error("CONFLICT", "Conflicting write in progress"))
    with pytest.raises(DataError) as info:
        connector(fake).deliver(record(action="create_only"))
    assert info.value.status == 409
    assert [r.method for r in fake.requests] == ["POST"]


# errors ---------------------------------------------------------------------------------
def test_a_validation_error_names_each_property_hubspot_refused() -> None:
    fake = HubSpot()
    mapped = record(email="ada@@example", firstname="Ada", lifecyclestage="customerx")
    email = FieldResult("email", "ada@@example", "ada@@example", "source")
    with pytest.raises(DataError) as info:
        connector(fake).deliver(replace(mapped, fields=(email, *mapped.fields)))
    error = info.value
    assert (error.category, error.status) == ("rejected_by_target", 400)
    assert [(p["field"], p["code"]) for p in error.problems] == [
        ("email", "INVALID_EMAIL"),
        ("lifecyclestage", "INVALID_OPTION"),
    ]
    assert error.problems[0]["problem"] == "Email address ada@@example is invalid"
    assert str(error.problems[1]["problem"]).startswith(
        "customerx was not one of the allowed options"
    )
    assert error.excerpt.startswith('{"status":"error","message":"Property values were not valid')
    assert fake.records() == {} and fake.violations() == []


def test_a_validation_error_with_an_errors_list_names_each_property() -> None:
    fake = HubSpot()
    # 400 VALIDATION_ERROR with errors[].context.propertyName (a list of names) [errors],
    # [upsert] (ErrorDetail.context: dict(str, list[str]))
    fake.script = answering(
        400,
        hubspot_error(
            "VALIDATION_ERROR",
            "One or more validation errors occurred",
            errors=[
                {
                    "message": '"hs_object_source" is a read only property; its value cannot '
                    "be set.",
                    "code": "READ_ONLY_VALUE",
                    "context": {"propertyName": ["hs_object_source"]},
                },
                {
                    "message": 'Property "favourite_colour" does not exist',
                    "code": "PROPERTY_DOESNT_EXIST",
                    "context": {"propertyName": ["favourite_colour"]},
                },
            ],
        ),
    )
    with pytest.raises(DataError) as info:
        connector(fake).deliver(record())
    assert [(p["field"], p["code"]) for p in info.value.problems] == [
        ("hs_object_source", "READ_ONLY_VALUE"),
        ("favourite_colour", "PROPERTY_DOESNT_EXIST"),
    ]
    assert "read only property" in str(info.value.problems[0]["problem"])


def test_both_validation_shapes_together_keep_the_property_names() -> None:
    # HubSpot's documented example carries an errors list (without propertyName) next to the
    # message form [errors]; the names are in the message
    body = hubspot_error(
        "VALIDATION_ERROR",
        validation_message(("email", "INVALID_EMAIL", "Email address ada@@example is invalid")),
        errors=[{"message": "Email address ada@@example is invalid", "in": "email"}],
    )
    assert property_problems(body) == [
        {
            "field": "email",
            "code": "INVALID_EMAIL",
            "problem": "Email address ada@@example is invalid",
        }
    ]


def test_a_ten_secondly_429_waits_for_the_rate_limit_interval() -> None:
    fake = HubSpot()
    fake.app.fault(mode="rate_limit_burst", count=1)  # 429 TEN_SECONDLY_ROLLING
    with pytest.raises(RateLimited) as info:
        connector(fake).deliver(record())
    assert info.value.retry_after == 10.0
    assert info.value.status == 429
    assert "TEN_SECONDLY_ROLLING" in str(info.value)


def test_the_rate_limit_interval_header_is_what_sets_the_wait() -> None:
    fake = HubSpot()
    # [usage]: a 1-second window
    fake.script = answering(
        429,
        {
            "status": "error",
            "errorType": "RATE_LIMIT",
            "message": "You have reached your secondly limit.",
            "policyName": "SECONDLY",
            "correlationId": CORRELATION,
        },
        headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "1000"},
    )
    with pytest.raises(RateLimited) as info:
        connector(fake).deliver(record())
    assert info.value.retry_after == 1.0


class _FrozenDatetime(datetime):
    """datetime.now() at a fixed instant (set per test)."""

    instant = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.instant.astimezone(tz) if tz is not None else cls.instant


@pytest.mark.parametrize(
    "zone, instant, hours",
    [
        # 22:00 in New York (EDT) -> 2 hours to midnight
        ("America/New_York", datetime(2025, 6, 16, 2, 0, tzinfo=UTC), 2.0),
        # no zone configured: UTC
        (None, datetime(2025, 6, 15, 18, 30, tzinfo=UTC), 5.5),
        # 23:00 in Berlin (CEST) is 21:00 UTC: one hour, not three
        ("Europe/Berlin", datetime(2025, 6, 15, 21, 0, tzinfo=UTC), 1.0),
        # the night clocks go back (New York, 2 Nov 2025): from 00:30 EDT the next midnight
        # (EST) is 24.5 real hours away; 23.5 would retry an hour before the reset
        ("America/New_York", datetime(2025, 11, 2, 4, 30, tzinfo=UTC), 24.5),
        # the night clocks go forward (9 Mar 2025): from 01:30 EST it is 21.5 real hours
        ("America/New_York", datetime(2025, 3, 9, 6, 30, tzinfo=UTC), 21.5),
    ],
)
def test_a_daily_429_waits_until_midnight_in_the_account_time_zone(
    monkeypatch: pytest.MonkeyPatch, zone: str | None, instant: datetime, hours: float
) -> None:
    monkeypatch.setattr(_FrozenDatetime, "instant", instant)
    monkeypatch.setattr(hubspot_module, "datetime", _FrozenDatetime)
    fake = HubSpot(daily_limit=1)
    fake.add(email="someone@example.com")
    connector(fake).deliver(record(email="someone@example.com"))  # the day's one call
    options = {"account_timezone": zone} if zone else {}
    with pytest.raises(RateLimited) as info:
        connector(fake, **options).deliver(record())
    assert info.value.retry_after == pytest.approx(hours * 3600)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 521])
def test_server_errors_are_transient(status: int) -> None:
    fake = HubSpot()
    # 502/504 timeouts, 503, 521 are HubSpot's "pause, then retry" answers [errors]
    fake.app.fault(mode="error5xx", status=status)
    with pytest.raises(TransientError) as info:
        connector(fake).deliver(record())
    assert not isinstance(info.value, RateLimited)
    assert info.value.status == status


def test_a_connection_dropped_without_an_answer_is_transient() -> None:
    fake = HubSpot()
    fake.app.fault(mode="drop", count=1)
    with pytest.raises(TransientError):
        connector(fake).deliver(record())
    assert fake.records() == {}


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError])
def test_timeouts_and_network_failures_are_transient(exc: type[httpx.TransportError]) -> None:
    fake = HubSpot()

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    fake.script = fail
    with pytest.raises(TransientError):
        connector(fake).deliver(record())


def test_a_403_is_an_auth_error() -> None:
    fake = HubSpot()
    # 403: the token lacks a scope [errors] (MISSING_SCOPES, context as in [upsert]); the
    # fake knows no scopes
    fake.script = answering(
        403,
        hubspot_error(
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
                }
            ],
        ),
    )
    with pytest.raises(AuthError) as info:
        connector(fake).deliver(record())
    assert info.value.status == 403
    assert "MISSING_SCOPES" in info.value.excerpt


def test_a_401_with_a_private_app_token_is_an_auth_error_without_a_second_try() -> None:
    fake = HubSpot(private_app_token="pat-na1-revoked")  # ours is no longer valid
    with pytest.raises(AuthError) as info:
        connector(fake).deliver(record())
    assert info.value.status == 401 and "INVALID_AUTHENTICATION" in info.value.excerpt
    assert len(fake.requests) == 1


# batches --------------------------------------------------------------------------------
def outcomes_by_email(
    records: list[MappedRecord], outcomes: list[WriteResult | HubError]
) -> dict[str, WriteResult | HubError]:
    assert len(outcomes) == len(records)
    return {r.match_value or "": o for r, o in zip(records, outcomes, strict=True)}


def test_a_batch_of_three_is_one_request_with_each_result_mapped_back() -> None:
    fake = HubSpot()
    existing = fake.add(email="bob@example.com")
    fake.rewrite = lambda body: body["results"].reverse()  # HubSpot keeps no input order
    records = [
        record(email=e, firstname=e[:3])
        for e in ("ada@example.com", "bob@example.com", "cy@example.com")
    ]
    outcomes = connector(fake).deliver_batch(records)
    [request] = fake.requests
    assert request.url.path == "/crm/v3/objects/contacts/batch/upsert"
    inputs = json.loads(request.content)["inputs"]
    assert [(i["id"], i["objectWriteTraceId"], i["properties"]) for i in inputs] == [
        ("ada@example.com", "t0", {"firstname": "ada"}),
        ("bob@example.com", "t1", {"firstname": "bob"}),
        ("cy@example.com", "t2", {"firstname": "cy@"}),
    ]
    by_email = outcomes_by_email(records, outcomes)
    assert all(isinstance(o, WriteResult) for o in outcomes)
    ada, bob, cy = (by_email[e] for e in ("ada@example.com", "bob@example.com", "cy@example.com"))
    assert isinstance(ada, WriteResult) and isinstance(bob, WriteResult)
    assert isinstance(cy, WriteResult)
    assert (bob.operation, bob.record_id) == ("updated", existing)
    assert (ada.operation, ada.record_id) == (
        "created",
        fake.find("contacts", "email", "ada@example.com"),
    )
    assert (cy.operation, cy.record_id) == (
        "created",
        fake.find("contacts", "email", "cy@example.com"),
    )
    assert ada.written_fields == ("firstname",)


def test_batch_results_are_matched_by_email_when_no_trace_id_comes_back() -> None:
    fake = HubSpot()

    def without_trace_ids(body: dict[str, Any]) -> None:
        body["results"].reverse()
        for result in body["results"]:
            del result["objectWriteTraceId"]

    fake.rewrite = without_trace_ids
    existing = fake.add(email="bob@example.com")
    records = [
        record(email="ada@example.com", firstname="Ada"),
        record(email="Bob@Example.com", firstname="Bob"),
    ]
    outcomes = connector(fake).deliver_batch(records)
    assert [getattr(o, "operation", o) for o in outcomes] == ["created", "updated"]
    assert getattr(outcomes[1], "record_id", None) == existing


def test_a_207_fails_only_the_record_hubspot_refused() -> None:
    fake = HubSpot()
    records = [record(email=e) for e in ("ada@example.com", "bad@example", "cy@example.com")]
    outcomes = connector(fake).deliver_batch(records)
    assert len(fake.requests) == 1
    assert fake.requests[0].url.path.endswith("/batch/upsert")
    ada, bad, cy = outcomes
    assert isinstance(ada, WriteResult) and ada.operation == "created"
    assert isinstance(cy, WriteResult) and cy.operation == "created"
    assert isinstance(bad, DataError)
    assert bad.category == "rejected_by_target"
    assert [p["field"] for p in bad.problems] == ["email"]
    assert fake.find("contacts", "email", "bad@example") is None


def test_a_record_the_batch_answer_does_not_mention_is_retried_not_delivered() -> None:
    fake = HubSpot()
    # a COMPLETE batch answer [upsert] that lists only the first input
    fake.rewrite = lambda body: body.update(results=body["results"][:1])
    first, second = connector(fake).deliver_batch(
        [record(email="ada@example.com"), record(email="bob@example.com")]
    )
    assert isinstance(first, WriteResult)
    assert first.record_id == fake.find("contacts", "email", "ada@example.com")
    assert isinstance(second, TransientError)


def test_a_whole_batch_400_falls_back_so_only_the_bad_record_is_a_data_error() -> None:
    fake = HubSpot()

    def whole_batch_400(request: httpx.Request) -> httpx.Response | None:
        # one invalid record failing the whole batch: 400 VALIDATION_ERROR [errors] (the fake
        # answers 207 when each input has a trace id, as the connector's have)
        inputs = json.loads(request.content).get("inputs", [])
        if len(inputs) < 2:
            return None
        problem = PropError("email", "INVALID_EMAIL", "Email address bad@example is invalid")
        return httpx.Response(400, json=property_error_body([problem], 12345678))

    fake.script = whole_batch_400
    records = [record(email=e) for e in ("ada@example.com", "bad@example", "cy@example.com")]
    outcomes = connector(fake).deliver_batch(records)
    upserts = fake.bodies("/batch/upsert")
    assert [len(b["inputs"]) for b in upserts] == [3, 1, 1, 1]
    ada, bad, cy = outcomes
    assert isinstance(ada, WriteResult) and isinstance(cy, WriteResult)
    assert isinstance(bad, DataError) and bad.status == 400
    assert [p["field"] for p in bad.problems] == ["email"]
    assert fake.find("contacts", "email", "ada@example.com") is not None
    assert fake.find("contacts", "email", "cy@example.com") is not None


def test_text_utf8_cannot_encode_fails_only_its_own_record_as_a_data_error() -> None:
    """The mapping engine rejects a lone surrogate first; should one reach the request, it is
    still that record's data error (never an internal error retried for the whole batch)."""
    fake = HubSpot()
    records = [
        record(email="ada@example.com"),
        record(email="bad@example.com", firstname="Ada \ud800"),
        record(email="cy@example.com"),
    ]
    ada, bad, cy = connector(fake).deliver_batch(records)
    assert isinstance(ada, WriteResult) and isinstance(cy, WriteResult)
    assert isinstance(bad, DataError) and bad.category == "mapping"
    assert "cannot be encoded as UTF-8 (\\ud800, a lone surrogate)" in str(bad)
    assert [len(b["inputs"]) for b in fake.bodies("/batch/upsert")] == [1, 1]


def test_a_batch_with_target_owned_fields_reads_once_for_all_records() -> None:
    fake = HubSpot()
    fake.add(email="bob@example.com", lifecyclestage="opportunity")
    fake.add(email="cy@example.com", lifecyclestage="")
    records = [
        record(email=e, firstname="X", lifecyclestage=("customer", "target"))
        for e in ("ada@example.com", "bob@example.com", "cy@example.com")
    ]
    outcomes = connector(fake).deliver_batch(records)
    assert [r.url.path.rsplit("/", 1)[-1] for r in fake.requests] == ["read", "upsert"]
    [read] = fake.bodies("/batch/read")
    assert read["inputs"] == [
        {"id": "ada@example.com"},
        {"id": "bob@example.com"},
        {"id": "cy@example.com"},
    ]
    [upsert] = fake.bodies("/batch/upsert")
    assert [i["properties"] for i in upsert["inputs"]] == [
        {"firstname": "X", "lifecyclestage": "customer"},  # new: nothing to keep
        {"firstname": "X"},  # HubSpot's value is kept
        {"firstname": "X", "lifecyclestage": "customer"},
    ]  # empty at HubSpot: written
    assert [getattr(o, "skipped_fields", None) for o in outcomes] == [(), ("lifecyclestage",), ()]


@pytest.mark.parametrize(
    "second",
    [
        record(
            email="acme-1",
            obj="companies",
            match_field="crmhub_external_id",
            crmhub_external_id="acme-1",
            name="Acme",
        ),
        record(email="bob@example.com", action="create_only"),
    ],
    ids=["another object", "another action"],
)
def test_a_mixed_batch_falls_back_to_one_write_per_record(second: MappedRecord) -> None:
    fake = HubSpot()
    outcomes = connector(fake).deliver_batch([record(email="ada@example.com"), second])
    assert all(isinstance(o, WriteResult) for o in outcomes)
    assert len(fake.requests) == 2
    first_body = json.loads(fake.requests[0].content)
    assert [i["id"] for i in first_body["inputs"]] == ["ada@example.com"]


def test_a_batch_never_sends_more_than_100_inputs() -> None:
    fake = HubSpot()
    records = [record(email=f"user{i}@example.com") for i in range(BATCH_LIMIT + 30)]
    outcomes = connector(fake).deliver_batch(records)
    sizes = [len(b["inputs"]) for b in fake.bodies("/batch/upsert")]
    assert max(sizes) <= BATCH_LIMIT
    assert sum(sizes) == len(records) and len(sizes) == 2
    assert all(isinstance(o, WriteResult) and o.operation == "created" for o in outcomes)


@pytest.mark.parametrize("wanted, expected", [(None, 100), (10, 10), (500, 100), (0, 1)])
def test_batch_size_comes_from_the_options_capped_at_hubspots_limit(
    wanted: int | None, expected: int
) -> None:
    options = {"batch_size": wanted} if wanted is not None else {}
    assert connector(HubSpot(), **options).batch_size == expected


def test_a_batch_wide_rate_limit_is_raised_for_the_whole_batch() -> None:
    fake = HubSpot()
    fake.app.fault(mode="rate_limit_burst")  # 429 TEN_SECONDLY_ROLLING
    with pytest.raises(RateLimited):
        connector(fake).deliver_batch(
            [record(email="a@example.com"), record(email="b@example.com")]
        )
    assert len(fake.requests) == 1  # no per-record hammering after a 429


def test_a_failed_chunk_of_a_large_batch_does_not_undo_the_delivered_one() -> None:
    fake = HubSpot(ten_secondly=1)  # the first chunk takes the window's one call
    records = [record(email=f"user{i}@example.com") for i in range(BATCH_LIMIT + 5)]
    outcomes = connector(fake).deliver_batch(records)
    assert all(isinstance(o, WriteResult) for o in outcomes[:BATCH_LIMIT])
    assert all(isinstance(o, RateLimited) for o in outcomes[BATCH_LIMIT:])
    assert len(outcomes) == len(records)
    assert len(fake.records()) == BATCH_LIMIT


def test_one_record_twice_in_a_batch_goes_one_at_a_time_in_order() -> None:
    """Deliveries kept in order on another key (a fetch: mapping's, on the fetched record's
    id) may write one HubSpot record twice in one batch; HubSpot refuses a batch naming an id
    twice, so those go one at a time, in order: the later value is the one that stays."""
    fake = HubSpot()
    records = [
        record(email="ada@example.com", firstname="first"),
        record(email=" ADA@example.com", firstname="second"),
    ]
    outcomes = connector(fake).deliver_batch(records)
    assert all(isinstance(o, WriteResult) for o in outcomes)
    assert [json.loads(r.content)["inputs"][0]["properties"] for r in fake.requests] == [
        {"firstname": "first"},
        {"firstname": "second"},
    ]
