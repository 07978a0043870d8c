"""The mapping engine over configurations loaded from YAML: fields, match keys, actions,
ownership, target field specs, and the configuration errors they can raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import load_config
from core.config.model import Config, MappingConfig, ObjectSpec, TargetField
from core.errors import ConfigError, DataError
from core.mapping import MappedRecord, map_event, match_value, record_key
from core.mapping.engine import FieldResult, evaluate

HEAD = """
sources:
  shop:
    verify: {scheme: none}
    allow_unsigned: true
    event_type: type
connections:
  crm:
    connector: http
    base_url: http://127.0.0.1:9
"""


def load(write_config: Any, mappings: str, connection_extra: str = "") -> Config:
    text = HEAD + connection_extra + "mappings:\n" + mappings
    return load_config(write_config(text), {}, check_secrets=False)


def mapping(
    write_config: Any,
    fields: str,
    *,
    match: str = "{field: email, from: email, normalize: email}",
    action: str = "upsert",
    extra: str = "",
    connection_extra: str = "",
) -> MappingConfig:
    match_line = f"    match: {match}\n" if match else ""
    config = load(
        write_config,
        f"""
  m:
    source: shop
    connection: crm
    object: contacts
    action: {action}
{match_line}{extra}    fields:
{fields}
""",
        connection_extra,
    )
    return config.mappings["m"]


def problems_of(mapping: MappingConfig, body: Any) -> list[dict[str, Any]]:
    with pytest.raises(DataError) as info:
        map_event(mapping, body)
    return info.value.problems


def config_problems(write_config: Any, mappings: str, connection_extra: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write_config, mappings, connection_extra)
    return [str(p) for p in info.value.problems]


# -- fields ---------------------------------------------------------------------------------


def test_from_paths_with_list_indexes(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      first_item: {from: "items[0].sku"}
      second_item: items.1.sku
      city: customer.addresses[0].city
""",
    )
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "A1"}, {"sku": "B2"}],
        "customer": {"addresses": [{"city": "London"}]},
    }
    assert map_event(m, body).values() == {
        "email": "ada@example.com",
        "first_item": "A1",
        "second_item": "B2",
        "city": "London",
    }


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"email": "a@x.com", "work": "w@x.com", "home": "h@x.com"}, "w@x.com"),
        ({"email": "a@x.com", "work": "  ", "home": "h@x.com"}, "h@x.com"),
        ({"email": "a@x.com", "work": [], "home": "h@x.com"}, "h@x.com"),
        ({"email": "a@x.com", "work": None, "home": "h@x.com"}, "h@x.com"),
        ({"email": "a@x.com", "work": {}, "home": "h@x.com"}, "h@x.com"),  # core/mapping/empty
    ],
)
def test_several_paths_the_first_non_empty_wins(
    write_config: Any, body: dict, expected: str
) -> None:
    m = mapping(
        write_config,
        """
      email: email
      contact_email: {from: [work, home]}
""",
    )
    evaluation = evaluate(m, body)
    assert map_event(m, body).values()["contact_email"] == expected
    outcome = next(f for f in evaluation.fields if f.name == "contact_email")
    assert outcome.origin == ("work" if expected.startswith("w") else "home")


def test_const_default_and_required(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: {from: email, required: true}
      lead_source: {const: webshop}
      country: {from: country, default: GB}
      tier: {from: tier, default: standard, required: true}
      note: {from: note}
""",
    )
    record = map_event(m, {"email": "ada@example.com", "country": ""})
    assert record.values() == {
        "email": "ada@example.com",
        "lead_source": "webshop",
        "country": "GB",
        "tier": "standard",
    }
    skipped = next(f for f in evaluate(m, {"email": "a@x.com"}).fields if f.name == "note")
    assert not skipped.write and skipped.reason == "skipped: note is missing or empty"


def test_const_values_go_through_transforms(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      source: {const: "  Web Shop ", transform: [strip, lower]}
""",
    )
    assert map_event(m, {"email": "a@x.com"}).values()["source"] == "web shop"


def test_transforms_apply_in_order(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      code: {from: code, transform: [strip, upper, {truncate: 3}]}
      code2: {from: code, transform: [{truncate: 3}, strip, upper]}
""",
    )
    values = map_event(m, {"email": "a@x.com", "code": "  abcdef"}).values()
    assert values["code"] == "ABC" and values["code2"] == "A"


def test_default_is_written_as_is_when_the_value_is_empty_after_transforms(
    write_config: Any,
) -> None:
    m = mapping(
        write_config,
        """
      email: email
      lastname: {from: name, transform: [last_name], default: "(unknown)"}
      firstname: {from: name, transform: [first_name, upper], default: nobody}
""",
    )
    values = map_event(m, {"email": "a@x.com", "name": "Cher"}).values()
    assert values == {"email": "a@x.com", "lastname": "(unknown)", "firstname": "CHER"}
    values = map_event(m, {"email": "a@x.com"}).values()
    assert values["firstname"] == "nobody"  # not transformed


def test_every_field_problem_is_reported_at_once(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: {from: email, transform: [email], required: true}
      phone: {from: [phone, mobile], transform: [{e164: {region: US}}]}
      name: {from: name, required: true}
      tier: {from: tier, transform: [{map: {values: {g: Gold}}}]}
""",
    )
    problems = problems_of(m, {"email": "not-an-email", "phone": "12", "tier": "x"})
    assert [p["field"] for p in problems] == ["email", "phone", "name", "tier"]
    by_field = {p["field"]: p for p in problems}
    assert by_field["email"]["value"] == "not-an-email"
    assert by_field["email"]["problem"].startswith("email: not a valid email address")
    assert by_field["phone"]["problem"].startswith("e164: ")
    assert by_field["name"]["problem"] == "required, but name is missing or empty"
    assert "unknown value 'x'" in by_field["tier"]["problem"]
    problems = problems_of(m, {"name": "Ada"})
    assert [p["field"] for p in problems] == ["email", "email"]
    assert "match key missing" in problems[1]["problem"]


def test_mapping_errors_are_data_errors_of_category_mapping(write_config: Any) -> None:
    m = mapping(write_config, "      email: {from: email, required: true}\n")
    with pytest.raises(DataError) as info:
        map_event(m, {})
    assert info.value.category == "mapping"
    assert "mapping 'm' failed" in str(info.value)


def test_a_field_built_by_a_template_needs_no_from(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      name: {transform: [{template: "{data.object.first} {data.object.last}"}]}
      label: {transform: [{join: {paths: [data.object.last, data.object.first], separator: ", "}},
                          upper]}
      empty: {transform: [{template: "{nothing.here}"}], default: n/a}
""",
    )
    body = {"email": "a@x.com", "data": {"object": {"first": "Ada", "last": "Lovelace"}}}
    assert map_event(m, body).values() == {
        "email": "a@x.com",
        "name": "Ada Lovelace",
        "label": "LOVELACE, ADA",
        "empty": "n/a",
    }


def test_required_built_field_that_comes_out_empty(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      name: {transform: [{template: "{first} {last}"}], required: true}
""",
    )
    (problem,) = problems_of(m, {"email": "a@x.com"})
    assert (
        problem["problem"] == "required, but the template transform is empty after the transforms"
    )


# -- ownership, actions, match keys ---------------------------------------------------------


def test_owner_target_fields_are_marked_for_the_connector(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: email
      lifecycle: {const: lead, owner: target}
""",
    )
    record = map_event(m, {"email": "a@x.com"})
    assert record.target_owned == ("lifecycle",)
    assert FieldResult("lifecycle", "lead", "lead", "target") in record.fields
    outcome = next(f for f in evaluate(m, {"email": "a@x.com"}).fields if f.name == "lifecycle")
    assert outcome.write and outcome.reason == "written only if empty at the target"


@pytest.mark.parametrize(
    "action, operation",
    [("upsert", "upsert"), ("create_only", "create"), ("update_only", "update")],
)
def test_actions(write_config: Any, action: str, operation: str) -> None:
    m = mapping(write_config, "      email: email\n", action=action)
    record = map_event(m, {"email": "A@X.com"})
    assert record.action == action
    assert evaluate(m, {"email": "A@X.com"}).operation == operation
    assert record.as_json()["match"] == {"field": "email", "value": "a@x.com"}


def test_create_only_may_go_without_a_match_key(write_config: Any) -> None:
    m = mapping(write_config, "      note: note\n", match="", action="create_only")
    record = map_event(m, {"note": "hi"})
    assert record.match_field is None and record.match_value is None
    assert record_key(m, {"note": "hi"}, "dlv_1") == "crm:contacts:#dlv_1"


def test_match_key_is_normalised_and_plus_folding_is_opt_in(write_config: Any) -> None:
    plain = mapping(write_config, "      email: email\n")
    folded = mapping(
        write_config,
        "      email: email\n",
        match="{field: email, from: email, normalize: email, fold_plus_addressing: true}",
    )
    body = {"email": "  Ada+CRM@Example.com "}
    assert match_value(plain, body) == "ada+crm@example.com"
    assert match_value(folded, body) == "ada@example.com"
    assert record_key(folded, body, "x") == "crm:contacts:email=ada@example.com"


def test_phone_match_keys_use_the_match_region(write_config: Any) -> None:
    m = mapping(
        write_config,
        "      phone: phone\n",
        match="{field: phone, from: phone, normalize: phone, region: US}",
    )
    assert match_value(m, {"phone": "(415) 555-0123"}) == "+14155550123"
    assert match_value(m, {"phone": "+1 415 555 0123"}) == "+14155550123"


def test_match_key_missing_is_a_problem_for_upserts(write_config: Any) -> None:
    m = mapping(
        write_config,
        "      name: name\n",
        match="{field: email, from: [email, contact.email], normalize: email}",
    )
    (problem,) = problems_of(m, {"name": "Ada", "email": "   "})
    assert problem["field"] == "email"
    assert "email or contact.email is empty" in problem["problem"]
    assert match_value(m, {"contact": {"email": "B@x.com"}}) == "b@x.com"


def test_text_utf8_cannot_encode_is_a_mapping_problem_naming_each_field(write_config: Any) -> None:
    """A lone surrogate (JSON's "\\ud800") can be neither sent nor stored: each field (a
    nested value too) and the match key holding one is a problem, told in encodable text."""
    m = mapping(
        write_config,
        "      name: name\n      address: address\n"
        "      company: {from: company, transform: [upper]}\n      note: note\n",
        match="{field: key, from: key, normalize: lower}",
    )
    body = {
        "key": "K\ud800",
        "name": "Ada \udc00",
        "address": {"lines": ["1 Rd", "\udbff"]},
        "company": "acme\ud800",
        "note": "fine \U0001f600",
    }  # a whole pair is fine
    with pytest.raises(DataError) as info:
        map_event(m, body)
    assert info.value.category == "mapping"
    problems = {p["field"]: p for p in info.value.problems}
    assert sorted(problems) == ["address", "company", "key", "name"]
    assert problems["name"]["problem"].startswith(
        "cannot be encoded as UTF-8 text: \\udc00 (a lone surrogate) at character 4;"
    )
    assert "at character 0 of .lines[1]" in problems["address"]["problem"]
    assert problems["company"]["value"] == "ACME\\ud800"  # the value as mapped
    assert problems["key"]["value"] == "k\\ud800"
    # the dead letter is stored as text: nothing in it that UTF-8 cannot encode
    json.dumps([str(info.value), info.value.problems], ensure_ascii=False).encode("utf-8")

    # the record key (a Redis key name) is hashed, the same for the same key every time
    key = record_key(m, body, "dlv_1")
    assert key.startswith("crm:contacts:sha256=") and key.encode("utf-8")
    assert record_key(m, {"key": "k\ud800"}, "dlv_2") == key
    assert record_key(m, {"key": "k\ud801"}, "dlv_2") != key


def test_map_event_keeps_its_old_call(write_config: Any) -> None:
    m = mapping(write_config, "      email: email\n")
    record = map_event(m, {"email": "a@x.com"})
    assert isinstance(record, MappedRecord) and record.mapping == "m"


# -- target field specs ---------------------------------------------------------------------

SPEC = """    objects:
      contacts:
        fields:
          email: {type: email, required: true}
          firstname: {type: string, max_length: 5}
          age: {type: number}
          vip: {type: boolean}
          birthday: {type: date}
          seen_at: {type: datetime}
          tier: {type: enum, values: [gold, silver]}
          phone: {type: phone}
          country: {values: [GB, US]}
          notes: {}
"""


def spec_mapping(write_config: Any, action: str = "upsert") -> MappingConfig:
    return mapping(
        write_config,
        """
      email: {from: email}
      firstname: {from: first}
      age: {from: age}
      vip: {from: vip}
      birthday: {from: birthday}
      seen_at: {from: seen_at}
      tier: {from: tier}
      phone: {from: phone}
      country: {from: country}
      notes: {from: notes}
""",
        connection_extra=SPEC,
        action=action,
    )


GOOD = {
    "email": "ada@example.com",
    "first": "Ada",
    "age": 36,
    "vip": True,
    "birthday": "1815-12-10",
    "seen_at": "2024-01-05T10:00:00Z",
    "tier": "gold",
    "phone": "+14155550123",
    "country": "GB",
    "notes": {"any": "thing"},
}


def test_a_record_that_fits_the_spec_maps(write_config: Any) -> None:
    m = spec_mapping(write_config)
    assert m.target is not None and m.target.fields["tier"].values == ("gold", "silver")
    assert map_event(m, GOOD).values()["tier"] == "gold"
    epoch = dict(GOOD, birthday=1_704_412_800_000, seen_at=1_704_448_800_123)
    assert map_event(m, epoch).values()["birthday"] == 1_704_412_800_000


def test_every_spec_problem_is_reported_at_once(write_config: Any) -> None:
    m = spec_mapping(write_config)
    bad = {
        "email": "nope",
        "first": "Augusta",
        "age": "36",
        "vip": "yes",
        "birthday": "10/12/1815",
        "seen_at": "yesterday",
        "tier": "bronze",
        "phone": "(415) 555-0123",
        "country": "FR",
        "notes": 1,
    }
    with pytest.raises(DataError) as info:
        map_event(m, bad)
    error = info.value
    assert error.category == "validation"
    problems: dict[Any, Any] = {p["field"]: p for p in error.problems}
    assert sorted(problems) == sorted(
        ["email", "firstname", "age", "vip", "birthday", "seen_at", "tier", "phone", "country"]
    )
    assert problems["firstname"] == {
        "field": "firstname",
        "value": "Augusta",
        "problem": "7 characters, more than the 5 the target accepts (add {truncate: 5})",
        "expected": "text, at most 5 characters",
    }
    assert problems["age"]["problem"] == "text '36' is not a number (add the number transform)"
    assert problems["vip"]["expected"] == "true or false"
    assert "'bronze' is not in the target's picklist" in problems["tier"]["problem"]
    assert problems["tier"]["expected"] == "one of: gold, silver"
    assert "E.164" in problems["phone"]["problem"]
    assert (
        problems["email"]["problem"] == "text 'nope' is not an email address (add the "
        "email transform)"
    )
    assert "does not fit the target's field spec (crm contacts)" in str(error)


def test_spec_problems_and_mapping_problems_come_together(write_config: Any) -> None:
    m = mapping(
        write_config,
        """
      email: {from: email, transform: [email]}
      firstname: {from: first}
""",
        connection_extra=SPEC,
    )
    problems = problems_of(m, {"email": "bad", "first": "Augusta"})
    assert [p["field"] for p in problems] == ["email", "firstname"]
    # the email failed mapping: not reported again as "required by the target"
    with pytest.raises(DataError) as info:
        map_event(m, {"email": "bad", "first": "Augusta"})
    assert info.value.category == "mapping"


def test_required_by_the_spec_when_the_record_may_be_created(write_config: Any) -> None:
    m = mapping(
        write_config,
        "      email: email\n      firstname: first\n",
        connection_extra=SPEC,
        match="{field: id, from: id}",
    )
    problems = problems_of(m, {"id": "1", "first": "Ada", "email": " "})
    assert {
        "field": "email",
        "value": None,
        "expected": "an email address",
        "problem": "required by the target, but the mapping gave it no value",
    } in problems


def test_update_only_does_not_need_the_required_fields(write_config: Any) -> None:
    m = mapping(
        write_config,
        "      firstname: first\n",
        connection_extra=SPEC,
        match="{field: id, from: id}",
        action="update_only",
    )
    assert map_event(m, {"id": "1", "first": "Ada"}).values() == {"firstname": "Ada"}


def test_bool_true_is_not_the_number_one_in_a_picklist(write_config: Any) -> None:
    spec = ObjectSpec("contacts", {"level": TargetField("level", "enum", values=(1, 2))})
    m = mapping(write_config, "      email: email\n      level: level\n")
    assert map_event(m, {"email": "a@x.com", "level": 1}, spec=spec).values()["level"] == 1
    with pytest.raises(DataError):
        map_event(m, {"email": "a@x.com", "level": True}, spec=spec)


def test_an_explicit_spec_overrides_the_mappings_own(write_config: Any) -> None:
    m = mapping(write_config, "      email: email\n      nick: nick\n")
    assert m.target is None
    spec = ObjectSpec("contacts", {"nick": TargetField("nick", "string", max_length=2)})
    assert map_event(m, {"email": "a@x.com", "nick": "abc"}, spec=None).values()["nick"] == "abc"
    (problem,) = problems_of_spec(m, {"email": "a@x.com", "nick": "abc"}, spec)
    assert problem["field"] == "nick" and problem["value"] == "abc"


def problems_of_spec(m: MappingConfig, body: Any, spec: ObjectSpec) -> list[dict[str, Any]]:
    with pytest.raises(DataError) as info:
        map_event(m, body, spec=spec)
    return info.value.problems


def test_evaluate_explains_rejected_fields(write_config: Any) -> None:
    m = spec_mapping(write_config)
    result = evaluate(m, dict(GOOD, tier="bronze"))
    assert not result.ok and result.record is None and result.operation == "fail"
    tier = next(f for f in result.fields if f.name == "tier")
    assert not tier.write and tier.reason.startswith("rejected: 'bronze' is not in")
    error = result.error()
    assert error is not None and error.category == "validation"


# -- configuration errors -------------------------------------------------------------------


def test_bad_transform_arguments_are_config_errors_with_file_line_and_key(
    write_config: Any,
) -> None:
    problems = config_problems(
        write_config,
        """
  m:
    source: shop
    connection: crm
    object: contacts
    match: {field: email, from: email}
    fields:
      email: email
      phone: {from: phone, transform: [strip, {e164: {region: ZZ}}]}
      tier: {from: tier, transform: [{map: {gold: Gold}}]}
      short: {from: x, transform: [{truncate: "80"}]}
      d: {from: x, transform: [{date: {format: unix}}]}
      t: {from: x, transform: [{template: "{unclosed"}]}
""",
    )
    assert len(problems) == 5
    assert any(
        ":20: mappings.m.fields.phone.transform.1: e164: unknown region 'ZZ'" in p for p in problems
    ), problems
    assert any(
        "mappings.m.fields.tier.transform.0: map: unknown option 'gold'" in p for p in problems
    )
    assert any(
        "mappings.m.fields.short.transform.0: truncate takes a positive length" in p
        for p in problems
    )
    assert any(
        "fields.d.transform.0: date: format must be one of iso, epoch_ms" in p for p in problems
    )
    assert any("fields.t.transform.0: template:" in p for p in problems)


def test_a_field_needs_from_const_or_a_building_transform(write_config: Any) -> None:
    problems = config_problems(
        write_config,
        """
  m:
    source: shop
    connection: crm
    object: contacts
    match: {field: email, from: email}
    fields:
      email: email
      name: {transform: [upper]}
      label: {transform: [{join: ", "}]}
""",
    )
    assert len(problems) == 2
    assert all(
        "needs `from` (a dotted path), `const` (a value), or a first transform" in p
        for p in problems
    )


@pytest.mark.parametrize(
    "field_spec, message",
    [
        ("{type: enum}", "fields.f.values: type enum needs `values`"),
        (
            "{type: string, values: [a]}",
            "fields.f.values: `values` (a picklist) applies to type enum, not string",
        ),
        ("{type: number, max_length: 3}", "fields.f.max_length: `max_length` applies to text"),
        ("{type: text}", "fields.f.type: unknown type 'text'"),
        ("{values: []}", "fields.f.values: the picklist needs at least one value"),
        ("{max_length: 0}", "fields.f.max_length"),
        ("{typ: string}", "fields.f.typ: unknown key; did you mean 'type'?"),
    ],
)
def test_bad_target_field_specs_are_config_errors(
    write_config: Any, field_spec: str, message: str
) -> None:
    extra = f"""    objects:
      contacts:
        fields:
          f: {field_spec}
"""
    problems = config_problems(write_config, "  {}\n", connection_extra=extra)
    assert any(f"connections.crm.objects.contacts.{message}" in p for p in problems), problems


def test_values_a_mapping_can_only_ever_write_are_checked_at_load_time(write_config: Any) -> None:
    problems = config_problems(
        write_config,
        """
  m:
    source: shop
    connection: crm
    object: contacts
    match: {field: email, from: email}
    fields:
      firstname: {const: Augusta}
      tier: {from: tier, transform: [{map: {values: {g: gold, b: bronze}, default: none}}]}
      country: {from: country, default: FR}
""",
        connection_extra=SPEC,
    )
    text = "\n".join(problems)
    assert (
        "mappings.m.fields: the target (crm contacts) requires field 'email', but this "
        "mapping never writes it" in text
    )
    assert "mappings.m.fields.firstname.const: 7 characters" in text
    assert "mappings.m.fields.tier.transform.0: 'bronze' is not in the target's picklist" in text
    assert "mappings.m.fields.tier.transform.0: 'none' is not in" in text
    assert "mappings.m.fields.country.default: 'FR' is not in" in text
    assert len(problems) == 5


def test_match_region_is_checked(write_config: Any) -> None:
    problems = config_problems(
        write_config,
        """
  m:
    source: shop
    connection: crm
    object: contacts
    match: {field: email, from: email, normalize: email, region: US}
    fields: {email: email}
  n:
    source: shop
    connection: crm
    object: contacts
    match: {field: phone, from: phone, normalize: phone, region: Mars}
    fields: {phone: phone}
""",
    )
    assert any(
        "mappings.m.match.region: `region` applies to `normalize: phone`" in p for p in problems
    )
    assert any("mappings.n.match.region: unknown region 'Mars'" in p for p in problems)


def test_the_example_configuration_still_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "examples" / "crmhub.yaml", {}, check_secrets=False)
    m = config.mappings["stripe-customer-to-hubspot-contact"]
    record = map_event(
        m,
        {
            "data": {
                "object": {
                    "id": "cus_1",
                    "email": "Ada@Example.com",
                    "name": "Ada King Lovelace",
                    "phone": "(415) 555-0123",
                }
            }
        },
    )
    assert record.values() == {
        "email": "ada@example.com",
        "phone": "+14155550123",
        "firstname": "Ada",
        "lastname": "King Lovelace",
    }
