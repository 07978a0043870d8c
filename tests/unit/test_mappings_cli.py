"""`crmhub mappings test`: the dry run over a payload file and over recorded events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
from click.testing import CliRunner, Result

from app import create_app
from app.cli import main
from app.cli.common import EXIT_CONFIG, EXIT_NOT_FOUND, CliContext
from core.ledger import Ledger
from core.settings import Settings

CONFIG = """
sources:
  shop:
    verify: {scheme: none}
    allow_unsigned: true
    event_id: id
    event_type: type
  forms:
    verify: {scheme: none}
    allow_unsigned: true
    event_type: header:X-Form
  hubspot:
    verify: {scheme: none}
    allow_unsigned: true
    batch: true
    event_id: eventId
    event_type: subscriptionType
connections:
  crm:
    connector: http
    base_url: http://127.0.0.1:9
    objects:
      contacts:
        fields:
          email: {type: email, required: true}
          firstname: {type: string, max_length: 10}
          tier: {type: enum, values: [Gold, Silver, Other]}
mappings:
  customer:
    source: shop
    when:
      event_type: [customer.created, customer.updated]
      fields: [{path: data.object.deleted, exists: false}]
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, transform: [email], required: true}
      firstname: {from: data.object.name, transform: [first_name]}
      phone: {from: [data.object.phone, data.object.shipping.phone],
              transform: [{e164: {region: US}}]}
      tier: {from: data.object.metadata.tier,
             transform: [{map: {values: {g: Gold, s: Silver}, default: Other}}]}
      lifecycle: {const: lead, owner: target}
      company: {from: data.object.company}
  form-signup:
    source: forms
    when: {event_type: signup}
    connection: crm
    object: leads
    action: create_only
    fields:
      name: {transform: [{template: "{answers.first} {answers.last}"}]}
  hubspot-contact:
    source: hubspot
    when: {event_type: contact.creation}
    connection: crm
    object: companies
    action: update_only
    match: {field: id, from: objectId}
    fields: {id: objectId}
"""

PREFIX = "crmhub-cli-test"


def customer(
    email: str = "Ada@Example.com",
    type_: str = "customer.created",
    event_id: str = "evt_1",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": type_,
        "data": {"object": {"email": email, "name": "Ada Lovelace", **extra}},
    }


@pytest.fixture
def config_path(write_config: Any) -> Path:
    path: Path = write_config(CONFIG)
    return path


def invoke(
    config_path: Path, args: list[str], *, obj: CliContext | None = None, stdin: str | None = None
) -> Result:
    return CliRunner().invoke(
        main, args, obj=obj, input=stdin, env={"CRMHUB_CONFIG": str(config_path)}
    )


def payload(tmp_path: Path, body: Any, name: str = "payload.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def run_json(config_path: Path, args: list[str], **kwargs: Any) -> tuple[int, Any]:
    result = invoke(config_path, [*args, "--json"], **kwargs)
    return result.exit_code, json.loads(result.output)


@pytest.fixture(autouse=True)
def no_target_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run never talks to the target."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the dry run called the target")

    monkeypatch.setattr(httpx.Client, "send", refuse)


# -- one payload ----------------------------------------------------------------------------


def test_a_payload_that_maps_prints_match_operation_and_fields(
    config_path: Path, tmp_path: Path
) -> None:
    body = customer(phone="(415) 555-0123", metadata={"tier": "g"})
    result = invoke(config_path, ["mappings", "test", "customer", payload(tmp_path, body)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "routed     yes" in out
    assert "match      email = ada@example.com" in out
    assert "would upsert: find by email = ada@example.com" in out
    assert '"Ada@Example.com" -> "ada@example.com"' in out
    assert '"(415) 555-0123" -> "+14155550123"' in out
    assert "written only if empty at the target" in out
    assert "skipped: data.object.company is missing or empty" in out
    assert "result     maps (dry run: nothing was written)" in out


def test_json_output_has_the_promised_shape(config_path: Path, tmp_path: Path) -> None:
    body = customer(metadata={"tier": "platinum"})
    code, out = run_json(config_path, ["mappings", "test", "customer", payload(tmp_path, body)])
    assert code == 0
    assert {"mapping", "operation", "match", "fields", "errors"} <= set(out)
    assert out["mapping"] == "customer" and out["operation"] == "upsert"
    assert out["match"] == {"field": "email", "value": "ada@example.com"}
    assert out["errors"] == [] and out["routed"] is True and out["ok"] is True
    fields = {f["name"]: f for f in out["fields"]}
    assert set(fields) == {"email", "firstname", "phone", "tier", "lifecycle", "company"}
    for f in out["fields"]:
        assert {"name", "source_value", "value", "write", "reason"} <= set(f)
    assert fields["firstname"] == {
        "name": "firstname",
        "from": "data.object.name",
        "source_value": "Ada Lovelace",
        "value": "Ada",
        "write": True,
        "reason": "written",
        "owner": "source",
    }
    assert fields["tier"]["value"] == "Other"
    assert fields["lifecycle"]["write"] is True and fields["lifecycle"]["owner"] == "target"
    assert fields["lifecycle"]["reason"] == "written only if empty at the target"
    assert fields["phone"]["write"] is False
    assert fields["phone"]["reason"] == (
        "skipped: data.object.phone or data.object.shipping.phone is missing or empty"
    )


def test_a_payload_that_does_not_map_lists_every_error_and_exits_1(
    config_path: Path, tmp_path: Path
) -> None:
    body = customer(email="not-an-email", name="Bartholomew Smith", phone="12")
    path = payload(tmp_path, body)
    code, out = run_json(config_path, ["mappings", "test", "customer", path])
    assert code == 1
    assert out["operation"] == "fail" and out["ok"] is False and out["category"] == "mapping"
    errors = {e["field"]: e for e in out["errors"]}
    assert set(errors) == {"email", "phone", "firstname"}
    assert errors["email"]["value"] == "not-an-email"
    assert errors["email"]["problem"].startswith("email: not a valid email address")
    assert errors["phone"]["problem"].startswith("e164: ")
    assert errors["firstname"]["value"] == "Bartholomew"  # the spec: max_length 10
    assert errors["firstname"]["expected"] == "text, at most 10 characters"
    fields = {f["name"]: f for f in out["fields"]}
    assert fields["firstname"]["reason"].startswith("rejected: 11 characters")
    text = invoke(config_path, ["mappings", "test", "customer", path])
    assert text.exit_code == 1
    assert "would fail: dead-lettered (mapping), nothing written" in text.output
    assert "result     does NOT map" in text.output
    assert "firstname: 11 characters, more than the 10 the target accepts" in text.output


def test_a_value_utf8_cannot_encode_is_shown_escaped_naming_the_field(
    config_path: Path, tmp_path: Path
) -> None:
    """The dry run of a dead letter's payload: JSON's "\\ud800" (a lone surrogate) is
    printed as its escape, never a UnicodeEncodeError."""
    path = payload(tmp_path, customer(company="Acme \ud800"))
    text = invoke(config_path, ["mappings", "test", "customer", path])
    assert text.exit_code == 1, text.output
    assert "would fail: dead-lettered (mapping), nothing written" in text.output
    assert (
        "company: cannot be encoded as UTF-8 text: \\ud800 (a lone surrogate) at character 5;"
    ) in text.output
    assert 'value "Acme \\ud800"' in text.output
    code, out = run_json(config_path, ["mappings", "test", "customer", path])
    assert code == 1 and [e["field"] for e in out["errors"]] == ["company"]


def test_spec_only_failures_are_validation_errors(config_path: Path, tmp_path: Path) -> None:
    body = customer(name="Bartholomew Smith")
    code, out = run_json(config_path, ["mappings", "test", "customer", payload(tmp_path, body)])
    assert code == 1 and out["category"] == "validation"
    assert [e["field"] for e in out["errors"]] == ["firstname"]


@pytest.mark.parametrize(
    "body, reason",
    [
        (
            customer(type_="invoice.paid"),
            "event type 'invoice.paid' is not one of customer.created, customer.updated",
        ),
        (
            customer(deleted=True),
            "when.fields: data.object.deleted does not exist does not hold (value: true)",
        ),
    ],
)
def test_a_payload_not_routed_to_the_mapping_says_why_and_exits_1(
    config_path: Path, tmp_path: Path, body: dict, reason: str
) -> None:
    code, out = run_json(config_path, ["mappings", "test", "customer", payload(tmp_path, body)])
    assert code == 1
    assert out["routed"] is False and out["operation"] == "skip"
    assert out["not_routed"] == [reason]
    assert out["errors"] == []  # the mapping itself would have worked
    text = invoke(config_path, ["mappings", "test", "customer", payload(tmp_path, body)])
    assert "routed     NO" in text.output and reason in text.output
    assert "would skip: the event is not routed to this mapping" in text.output


def test_an_event_type_read_from_a_header_needs_event_type(
    config_path: Path, tmp_path: Path
) -> None:
    path = payload(tmp_path, {"answers": {"first": "Ada", "last": "Lovelace"}})
    code, out = run_json(config_path, ["mappings", "test", "form-signup", path])
    assert code == 1 and out["routed"] is False
    assert "header X-Form" in out["not_routed"][0] and "--event-type" in out["not_routed"][0]
    code, out = run_json(
        config_path, ["mappings", "test", "form-signup", path, "--event-type", "signup"]
    )
    assert code == 0 and out["operation"] == "create"
    assert out["match"] == {"field": None, "value": None}
    assert out["fields"][0]["value"] == "Ada Lovelace" and out["fields"][0]["from"] is None


def test_payload_from_stdin(config_path: Path) -> None:
    result = invoke(
        config_path, ["mappings", "test", "customer", "-", "--json"], stdin=json.dumps(customer())
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["match"]["value"] == "ada@example.com"


def test_a_batch_payload_is_tested_event_by_event(config_path: Path, tmp_path: Path) -> None:
    body = [
        {"eventId": 1, "subscriptionType": "contact.creation", "objectId": 7},
        {"eventId": 2, "subscriptionType": "contact.deletion", "objectId": 8},
    ]
    code, out = run_json(
        config_path, ["mappings", "test", "hubspot-contact", payload(tmp_path, body)]
    )
    assert code == 1 and out["batch"] is True and out["ok"] is False
    assert [r["operation"] for r in out["results"]] == ["update", "skip"]
    assert out["results"][0]["match"] == {"field": "id", "value": "7"}


# -- usage and configuration errors ---------------------------------------------------------


def test_unknown_mapping(config_path: Path, tmp_path: Path) -> None:
    result = invoke(config_path, ["mappings", "test", "custmer", payload(tmp_path, {})])
    assert result.exit_code == EXIT_NOT_FOUND
    assert "no mapping named 'custmer'; did you mean 'customer'?" in result.output


def test_payload_that_is_not_json(config_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    result = invoke(config_path, ["mappings", "test", "customer", str(path)])
    assert result.exit_code == 2 and "is not valid JSON" in result.output


@pytest.mark.parametrize("args", [[], ["PAYLOAD", "--replay", "3"]])
def test_payload_or_replay_not_both_nor_neither(
    config_path: Path, tmp_path: Path, args: list[str]
) -> None:
    args = [payload(tmp_path, {}) if a == "PAYLOAD" else a for a in args]
    result = invoke(config_path, ["mappings", "test", "customer", *args])
    assert result.exit_code == 2 and "give either PAYLOAD.json or --replay N" in result.output


def test_a_bad_configuration_exits_with_its_problems(write_config: Any, tmp_path: Path) -> None:
    bad = write_config(
        CONFIG.replace("{e164: {region: US}}", "{e164: {region: XX}}"), name="bad.yaml"
    )
    result = invoke(bad, ["mappings", "test", "customer", payload(tmp_path, customer())])
    assert result.exit_code == EXIT_CONFIG
    assert "mappings.customer.fields.phone.transform.0: e164: unknown region 'XX'" in result.output


def test_secrets_are_not_needed(write_config: Any, tmp_path: Path) -> None:
    path = write_config(
        CONFIG.replace(
            "verify: {scheme: none}\n    allow_unsigned: true\n    event_id: id",
            "verify: {scheme: stripe, secret_env: NOT_SET_ANYWHERE}\n    event_id: id",
            1,
        ),
        name="secret.yaml",
    )
    result = invoke(path, ["mappings", "test", "customer", payload(tmp_path, customer())])
    assert result.exit_code == 0, result.output


# -- replay over recorded events ------------------------------------------------------------


@pytest.fixture
def ledger(config_path: Path, fake_redis: fakeredis.FakeRedis) -> Ledger:
    """Events recorded through the receiver, as in production."""
    settings = Settings.from_env(
        {
            "CRMHUB_CONFIG": str(config_path),
            "CRMHUB_KEY_PREFIX": PREFIX,
            "CRMHUB_REDIS_URL": "redis://unused",
        }
    )
    client = create_app(settings, redis_client=fake_redis).test_client()
    events = [
        customer(event_id="e1", email="one@example.com"),
        customer(event_id="e2", email="two@example.com", phone="12"),
        customer(event_id="e3", type_="invoice.paid"),
        customer(event_id="e4", email="four@example.com", phone="34"),
        customer(event_id="e5", email="bad"),
        customer(event_id="e6", email="six@example.com", type_="customer.updated"),
    ]
    for body in events:
        # one millisecond apart: events of the same millisecond have no order among them
        # (their ids' tails are random), and "the last 2" must mean e5 and e6
        time.sleep(0.002)
        response = client.post("/webhooks/shop", json=body)
        assert response.status_code == 202, response.get_json()
    response = client.post(
        "/webhooks/forms", json={"answers": {"first": "X"}}, headers={"X-Form": "signup"}
    )
    assert response.status_code == 202
    ledger: Ledger = client.application.extensions["crmhub"].ledger
    return ledger


def snapshot(r: fakeredis.FakeRedis) -> dict[Any, Any]:
    dumped = {}
    for key in r.keys("*"):
        dumped[key] = (r.type(key), r.dump(key), r.pttl(key) > 0)
    return dumped


def test_replay_summarises_the_recent_events_of_the_source(
    config_path: Path, ledger: Ledger, fake_redis: fakeredis.FakeRedis
) -> None:
    before = snapshot(fake_redis)
    code, out = run_json(
        config_path,
        ["mappings", "test", "customer", "--replay", "50"],
        obj=CliContext(_ledger=ledger),
    )
    assert snapshot(fake_redis) == before  # no ledger change, nothing queued
    assert code == 1
    assert out["replayed"] == 6 and out["source"] == "shop"
    assert out["summary"] == {"upsert": 2, "create": 0, "update": 0, "skip": 1, "fail": 3}
    failures = {(f["field"], f["problem"][:5]): f for f in out["failures"]}
    assert failures[("phone", "e164:")]["count"] == 2
    assert (
        failures[("phone", "e164:")]["problem"]
        == "e164: <value> is not a possible phone number for its country"
    )
    assert sorted(failures[("phone", "e164:")]["events"]) == sorted(
        e["event_id"]
        for e in out["events"]
        if e["match"] in ("two@example.com", "four@example.com")
    )
    assert failures[("email", "email")]["count"] == 1
    assert out["skips"][0]["count"] == 1
    assert "invoice.paid" in out["skips"][0]["reason"]
    assert next(e["type"] for e in out["events"]) == "customer.updated"  # newest first


def test_replay_text_and_limit(config_path: Path, ledger: Ledger) -> None:
    result = invoke(
        config_path,
        ["mappings", "test", "customer", "--replay", "2"],
        obj=CliContext(_ledger=ledger),
    )
    assert result.exit_code == 1  # e5 (bad email) is among the last two
    out = result.output
    assert "replayed the last 2 events of source shop through customer" in out
    assert "would upsert      1" in out and "would fail        1" in out
    assert "email: email: not a valid email address" in out


def test_replay_with_no_failures_exits_0(config_path: Path, ledger: Ledger) -> None:
    code, out = run_json(
        config_path,
        ["mappings", "test", "form-signup", "--replay", "10"],
        obj=CliContext(_ledger=ledger),
    )
    assert code == 0
    assert out["summary"]["create"] == 1 and out["replayed"] == 1


def test_replay_of_a_source_without_events(config_path: Path, ledger: Ledger) -> None:
    result = invoke(
        config_path,
        ["mappings", "test", "hubspot-contact", "--replay", "5"],
        obj=CliContext(_ledger=ledger),
    )
    assert result.exit_code == 0
    assert "no recorded events of source 'hubspot'" in result.output


def test_replay_does_not_take_an_event_type(config_path: Path, ledger: Ledger) -> None:
    result = invoke(
        config_path,
        ["mappings", "test", "customer", "--replay", "5", "--event-type", "x"],
        obj=CliContext(_ledger=ledger),
    )
    assert result.exit_code == 2
