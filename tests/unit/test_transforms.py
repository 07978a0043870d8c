"""Field transforms and match-key normalisation: each rule, its errors, and properties."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.mapping.normalize import (
    normalize_email,
    normalize_match,
    normalize_phone,
)
from core.mapping.transforms import (
    FACTORIES,
    Step,
    TransformError,
    build_transform,
    parse_template,
    split_name,
    to_e164,
)


def run(step: Any, value: Any, body: Any = None) -> Any:
    """Build a step as the YAML writes it (`"email"` or `{"e164": {...}}`) and apply it."""
    spec = {step: None} if isinstance(step, str) else step
    return build_transform(spec)(value, body)


def build_error(step: Any) -> str:
    spec = {step: None} if isinstance(step, str) else step
    with pytest.raises(ValueError) as info:
        build_transform(spec)
    assert not isinstance(info.value, TransformError)
    return str(info.value)


def fails(step: Any, value: Any, body: Any = None) -> str:
    with pytest.raises(TransformError) as info:
        run(step, value, body)
    return str(info.value)


# -- the registry ---------------------------------------------------------------------------


def test_every_transform_of_the_issue_is_registered() -> None:
    assert set(FACTORIES) == {
        "strip",
        "lower",
        "upper",
        "email",
        "e164",
        "date",
        "datetime",
        "map",
        "truncate",
        "first_name",
        "last_name",
        "join",
        "template",
        "bool",
        "number",
    }


def test_built_steps_are_named_callables_of_value_and_body() -> None:
    step = build_transform({"upper": None})
    assert isinstance(step, Step) and step.name == "upper"
    assert step("ada") == "ADA" == step("ada", {"ignored": True})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"nosuch": None}, "unknown transform 'nosuch'"),
        ({"lower": True}, "lower takes no arguments"),
        ({"email": {"strict": True}}, "email takes no arguments"),
        ({"bool": 1}, "bool takes no arguments"),
    ],
)
def test_unknown_transforms_and_stray_arguments_are_config_errors(spec: Any, message: str) -> None:
    assert message in build_error(spec)


# -- text -----------------------------------------------------------------------------------


def test_strip_lower_upper() -> None:
    assert run("strip", "  Ada \n") == "Ada"
    assert run("lower", "ADA") == "ada"
    assert run("upper", "ada") == "ADA"


@pytest.mark.parametrize("name", ["strip", "lower", "upper", "truncate", "first_name"])
def test_text_transforms_refuse_non_text_with_a_clear_error(name: str) -> None:
    step = {name: 3} if name == "truncate" else name
    assert f"{name} expects text, got number 42" in fails(step, 42)


def test_truncate() -> None:
    assert run({"truncate": 3}, "Lovelace") == "Lov"
    assert run({"truncate": 80}, "Ada") == "Ada"


@pytest.mark.parametrize("bad", [0, -1, "80", True, 1.5, None, {"length": 80}])
def test_truncate_needs_a_positive_length(bad: Any) -> None:
    assert "positive length" in build_error({"truncate": bad})


# -- email ----------------------------------------------------------------------------------


def test_email_trims_lowercases_and_checks_syntax() -> None:
    assert run("email", "  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert run("email", "ada+crm@example.com") == "ada+crm@example.com"  # no folding here


@pytest.mark.parametrize(
    "bad", ["not-an-email", "ada@", "@example.com", "a b@example.com", "ada@@example.com", "   "]
)
def test_email_rejects_bad_syntax(bad: str) -> None:
    assert "not a valid email address" in fails("email", bad)


def test_email_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert (
        run("email", "ada@no-such-domain-for-crmhub-tests.com")
        == "ada@no-such-domain-for-crmhub-tests.com"
    )


def test_email_refuses_non_text() -> None:
    assert "email expects text, got list" in fails("email", ["ada@example.com"])


# -- phone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, region, expected",
    [
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # an explicit country code wins
        ("020 7946 0958", "GB", "+442079460958"),
        ("+1 415 555 0123", None, "+14155550123"),
    ],
)
def test_e164(value: str, region: str | None, expected: str) -> None:
    args = {"region": region} if region else None
    assert run({"e164": args}, value) == expected


def test_e164_region_shorthand_and_case() -> None:
    assert run({"e164": "us"}, "415 555 0123") == "+14155550123"


def test_e164_takes_integers() -> None:
    assert run({"e164": {"region": "US"}}, 4155550123) == "+14155550123"


def test_e164_without_a_region_says_how_to_fix_it() -> None:
    message = fails("e164", "415 555 0123")
    assert "no country code" in message and "region" in message


@pytest.mark.parametrize("bad", ["555", "hello", "", "+", "+999 123"])
def test_e164_rejects_impossible_numbers(bad: str) -> None:
    fails({"e164": {"region": "US"}}, bad)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"region": "XX"}, "unknown region 'XX'"),
        ({"region": 1}, "unknown region 1"),
        ({"region": ["US"]}, "unknown region ['US']"),
        ({"country": "US"}, "unknown option 'country'"),
        (["US"], "takes a mapping of options"),
    ],
)
def test_e164_bad_arguments_are_config_errors(args: Any, message: str) -> None:
    assert message in build_error({"e164": args})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, "US", "GB", "DE"]))
def test_phone_parsing_never_crashes_on_any_text(text: str, region: str | None) -> None:
    try:
        result = to_e164(text, region)
    except TransformError:
        return
    assert result.startswith("+") and result[1:].isdigit()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789+-() .ext#*x", max_size=30))
def test_phone_parsing_never_crashes_on_phone_like_text(text: str) -> None:
    with contextlib.suppress(TransformError):
        to_e164(text, "US")


# -- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-01-05", "2024-01-05"),
        ("2024-01-05T23:30:00-05:00", "2024-01-05"),  # the calendar date as written
        ("January 5, 2024", "2024-01-05"),
        ("5 Jan 2024", "2024-01-05"),
        ("01/05/2024", "2024-01-05"),  # month first unless dayfirst
        (1_704_412_800, "2024-01-05"),  # epoch seconds (Stripe)
        (1_704_412_800_000, "2024-01-05"),  # epoch milliseconds (HubSpot)
        ("1704412800", "2024-01-05"),
        (1_704_412_800.5, "2024-01-05"),
    ],
)
def test_date_iso(value: Any, expected: str) -> None:
    assert run("date", value) == expected
    assert run({"date": {"format": "iso"}}, value) == expected


def test_date_epoch_ms_is_utc_midnight() -> None:
    expected = int(datetime(2024, 1, 5, tzinfo=UTC).timestamp()) * 1000
    assert run({"date": {"format": "epoch_ms"}}, "2024-01-05T18:00:00+09:00") == expected
    assert run({"date": "epoch_ms"}, "2024-01-05") == expected
    assert expected % 86_400_000 == 0


def test_date_dayfirst() -> None:
    assert run({"date": {"dayfirst": True}}, "05/01/2024") == "2024-01-05"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-01-05T10:00:00Z", "2024-01-05T10:00:00Z"),
        ("2024-01-05T10:00:00+02:00", "2024-01-05T08:00:00Z"),
        ("2024-01-05 10:00:00.250 UTC", "2024-01-05T10:00:00.250Z"),
        ("2024-01-05 10:00", "2024-01-05T10:00:00Z"),  # naive: taken as UTC
        ("2024-01-05", "2024-01-05T00:00:00Z"),
        (1_704_448_800, "2024-01-05T10:00:00Z"),
    ],
)
def test_datetime_iso_is_utc(value: Any, expected: str) -> None:
    assert run("datetime", value) == expected


def test_datetime_epoch_ms() -> None:
    assert (
        run({"datetime": {"format": "epoch_ms"}}, "2024-01-05T10:00:00.123+02:00")
        == int(datetime(2024, 1, 5, 8, 0, tzinfo=UTC).timestamp()) * 1000 + 123
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ("not a date", "not a recognisable date"),
        ("March", "incomplete date"),
        ("2024", "incomplete date"),
        ("Monday", "incomplete date"),
        ("2024-02-30", "not a recognisable date"),
        ("2024-01-05 10:00 EST", "unknown time zone 'EST'"),
        ("", "empty"),
        (True, "expects a date"),
        ({"y": 2024}, "expects a date"),
        (float("nan"), "not a date"),
        (10**30, "out of range"),
    ],
)
def test_dates_reject_what_they_cannot_read(bad: Any, message: str) -> None:
    assert message in fails("date", bad)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"format": "unix"}, "format must be one of iso, epoch_ms"),
        ("seconds", "format must be one of iso, epoch_ms"),
        ({"dayfirst": "yes"}, "dayfirst must be true or false"),
        ({"fmt": "iso"}, "unknown option 'fmt'"),
    ],
)
def test_date_bad_arguments_are_config_errors(args: Any, message: str) -> None:
    assert message in build_error({"date": args})
    assert message.replace("date", "datetime") in build_error(
        {"datetime": args}
    ) or message in build_error({"datetime": args})


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.sampled_from(["date", "datetime"]),
    st.sampled_from(["iso", "epoch_ms"]),
    st.booleans(),
)
def test_date_parsing_never_crashes_on_any_text(
    text: str, name: str, fmt: str, dayfirst: bool
) -> None:
    step = build_transform({name: {"format": fmt, "dayfirst": dayfirst}})
    try:
        result = step(text)
    except TransformError:
        return
    assert isinstance(result, int if fmt == "epoch_ms" else str)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789-/:.TZ +APMapmJanFebDec,", max_size=30))
def test_date_parsing_never_crashes_on_date_like_text(text: str) -> None:
    for name in ("date", "datetime"):
        with contextlib.suppress(TransformError):
            run(name, text)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True)))
def test_date_parsing_never_crashes_on_any_number(number: float) -> None:
    for name in ("date", "datetime"):
        with contextlib.suppress(TransformError):
            run({name: "epoch_ms"}, number)


# -- map ------------------------------------------------------------------------------------


def test_map_picklist() -> None:
    step = {"map": {"values": {"gold": "Gold", "silver": "Silver"}}}
    assert run(step, "gold") == "Gold"
    assert run(step, " silver ") == "Silver"  # compared as trimmed text


def test_map_unknown_value_without_default_is_an_error_listing_the_choices() -> None:
    message = fails({"map": {"values": {"gold": "Gold", "silver": "Silver"}}}, "bronze")
    assert "unknown value 'bronze'" in message and "gold, silver" in message


def test_map_default() -> None:
    step = {"map": {"values": {"gold": "Gold"}, "default": "Other"}}
    assert run(step, "bronze") == "Other"
    assert run({"map": {"values": {"gold": "Gold"}, "default": None}}, "bronze") is None


def test_map_compares_numbers_and_booleans_as_text() -> None:
    step = {"map": {"values": {1: "one", False: "no"}}}  # as YAML reads `1:` and `no:`
    assert run(step, "1") == "one" and run(step, 1) == "one"
    assert run(step, False) == "no" and run(step, "false") == "no"


def test_map_ignore_case() -> None:
    step = {"map": {"values": {"Gold": "G"}, "ignore_case": True}}
    assert run(step, "GOLD") == "G"
    assert "unknown value" in fails({"map": {"values": {"Gold": "G"}}}, "GOLD")


def test_map_refuses_lists() -> None:
    assert "single value" in fails({"map": {"values": {"a": "b"}}}, ["a"])


def test_map_exposes_its_outputs_for_load_time_checks() -> None:
    step = build_transform({"map": {"values": {"a": "A", "b": "B"}, "default": "Z"}})
    assert step.outputs == ("A", "B", "Z")


@pytest.mark.parametrize(
    "args, message",
    [
        (None, "map needs `values`"),
        ({"gold": "Gold"}, "unknown option 'gold'"),
        ({"values": {}}, "map needs `values`"),
        ({"values": ["gold"]}, "map needs `values`"),
        ({"values": {"a": 1}, "ignore_case": "yes"}, "ignore_case must be true or false"),
        ({"values": {"A": 1, "a": 2}, "ignore_case": True}, "are the same key"),
        ({"values": {1: "x", "1": "y"}}, "are the same key"),
    ],
)
def test_map_bad_arguments_are_config_errors(args: Any, message: str) -> None:
    assert message in build_error({"map": args})


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "full, first, last",
    [
        ("Ada Lovelace", "Ada", "Lovelace"),
        ("  Ada   King  Lovelace ", "Ada", "King Lovelace"),
        ("Lovelace, Ada", "Ada", "Lovelace"),
        ("Martin Luther King, Jr.", "Martin", "Luther King, Jr."),
        ("Cher", "Cher", ""),
        ("", "", ""),
    ],
)
def test_split_name(full: str, first: str, last: str) -> None:
    assert split_name(full) == (first, last)
    assert run("first_name", full) == first
    assert run("last_name", full) == last


# -- template and join ----------------------------------------------------------------------

BODY = {
    "data": {
        "object": {
            "first": "Ada",
            "last": "Lovelace",
            "age": 36,
            "vip": True,
            "tags": ["math", "", "poetry"],
            "address": {"city": "London"},
        },
        "items": [{"sku": "A1"}, {"sku": "B2"}],
    }
}


def test_template_reads_other_paths_of_the_event() -> None:
    step = {"template": "{data.object.first} {data.object.last}"}
    assert run(step, "ignored", BODY) == "Ada Lovelace"


def test_template_list_indexes_current_value_and_literal_braces() -> None:
    step = {
        "template": "{data.items[1].sku}/{data.items.0.sku} {.} {{x}} {data.object.age}"
        " {data.object.vip}"
    }
    assert run(step, "me", BODY) == "B2/A1 me {x} 36 true"


def test_template_missing_values_render_empty_and_the_result_is_trimmed() -> None:
    assert run({"template": "{data.object.first} {data.object.middle}"}, None, BODY) == "Ada"


def test_template_refuses_objects() -> None:
    assert "is object" in fails({"template": "{data.object.address}"}, None, BODY)


@pytest.mark.parametrize(
    "args, message",
    [
        ("{data.object.first", "is not closed"),
        ("data}", "has no opening"),
        ("{}", "is not a dotted path"),
        ("{a..b}", "is not a dotted path"),
        ("no placeholders", "use `const`"),
        (["{a}"], "template takes a text"),
    ],
)
def test_template_bad_arguments_are_config_errors(args: Any, message: str) -> None:
    assert message in build_error({"template": args})


def test_parse_template() -> None:
    assert parse_template("Hi {a.b}!{{") == ("Hi ", ("a.b",), "!{")


def test_join_paths_skips_empty_values() -> None:
    step = {"join": {"paths": ["data.object.first", "data.object.middle", "data.object.last"]}}
    assert run(step, None, BODY) == "Ada Lovelace"
    with_separator = {"join": {"paths": [".", "data.object.address.city"], "separator": ", "}}
    assert run(with_separator, "Ada", BODY) == "Ada, London"


def test_join_a_list_value() -> None:
    assert run({"join": ";"}, ["math", "", "poetry", 3]) == "math;poetry;3"
    assert run("join", ["a", "b"]) == "a b"
    assert (
        run({"join": {"paths": ["data.object.tags"], "separator": ","}}, None, BODY)
        == "math,poetry"
    )


def test_join_refuses_objects() -> None:
    assert "is object" in fails({"join": {"paths": ["data.object.address"]}}, None, BODY)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"paths": []}, "non-empty list"),
        ({"paths": "a.b"}, "non-empty list"),
        ({"paths": ["a..b"]}, "is not a dotted path"),
        ({"separator": 1}, "separator must be text"),
        ({"sep": ","}, "unknown option 'sep'"),
    ],
)
def test_join_bad_arguments_are_config_errors(args: Any, message: str) -> None:
    assert message in build_error({"join": args})


# -- bool and number ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("yes", True),
        (" No ", False),
        ("TRUE", True),
        ("0", False),
        ("1", True),
        ("on", True),
        ("off", False),
        (1, True),
        (0, False),
        ("y", True),
    ],
)
def test_bool(value: Any, expected: bool) -> None:
    assert run("bool", value) is expected


@pytest.mark.parametrize("bad", ["maybe", 2, "", None, [True]])
def test_bool_rejects_other_values(bad: Any) -> None:
    assert "not a yes/no value" in fails("bool", bad)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("42", 42),
        (" -3 ", -3),
        ("+7", 7),
        ("12.50", 12.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        (7, 7),
        (2.5, 2.5),
    ],
)
def test_number(value: Any, expected: float) -> None:
    result = run("number", value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("1,234.5", "thousands separators"),
        ("12abc", "not a number"),
        ("", "not a number"),
        (True, "not a number"),
        ("nan", "not a number"),
        (float("inf"), "not a finite number"),
        ("1e999", "not a finite number"),
        ([1], "not a number"),
    ],
)
def test_number_rejects_other_values(bad: Any, message: str) -> None:
    assert message in fails("number", bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_bool_number_and_email_never_crash_on_any_text(text: str) -> None:
    for name in ("bool", "number", "email"):
        with contextlib.suppress(TransformError):
            run(name, text)


# -- match-key normalisation ----------------------------------------------------------------


def test_email_match_keys_are_trimmed_and_lowercased() -> None:
    assert normalize_email("  Ada@Example.COM\t") == "ada@example.com"
    assert normalize_match("email", " ADA+crm@example.com ") == "ada+crm@example.com"


def test_plus_address_folding_only_when_asked() -> None:
    assert normalize_email("Ada+CRM@example.com", fold_plus_addressing=True) == "ada@example.com"
    assert normalize_email("ada+a+b@example.com", fold_plus_addressing=True) == "ada@example.com"
    assert normalize_email("+tag@example.com", fold_plus_addressing=True) == "+tag@example.com"
    assert normalize_email("ada+crm@example.com") == "ada+crm@example.com"


@pytest.mark.parametrize(
    "kind, raw, expected",
    [
        ("lower", "  ABC ", "abc"),
        ("strip", "  ABC ", "ABC"),
        (None, "  a \t b  ", "a b"),
        (None, 42, "42"),
        ("phone", "+1 (415) 555-0123", "+14155550123"),
        ("phone", "call me", ""),
        ("phone", "555-0123", "5550123"),  # no region: its digits
    ],
)
def test_normalize_match(kind: str | None, raw: Any, expected: str) -> None:
    assert normalize_match(kind, raw) == expected


def test_phone_match_keys_use_the_region() -> None:
    assert (
        normalize_phone("(415) 555-0123", "US")
        == "+14155550123"
        == normalize_match("phone", "+1 415 555 0123", region="US")
    )


KINDS = ["email", "lower", "strip", "phone", None]
ASCII_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
PADDING = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003", max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(KINDS), st.booleans())
def test_normalisation_is_idempotent(text: str, kind: str | None, fold: bool) -> None:
    once = normalize_match(kind, text, fold_plus_addressing=fold)
    assert normalize_match(kind, once, fold_plus_addressing=fold) == once


@settings(max_examples=300, deadline=None)
@given(ASCII_TEXT, st.sampled_from(["email", "lower"]), st.booleans(), PADDING, PADDING)
def test_email_and_lower_normalisation_ignore_case_and_padding(
    text: str, kind: str, fold: bool, before: str, after: str
) -> None:
    expected = normalize_match(kind, text, fold_plus_addressing=fold)
    for variant in (text.upper(), text.lower(), text.swapcase(), before + text + after):
        assert normalize_match(kind, variant, fold_plus_addressing=fold) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), PADDING, PADDING, st.sampled_from(["strip", "phone", None]))
def test_normalisation_ignores_outer_whitespace(
    text: str, before: str, after: str, kind: str | None
) -> None:
    assert normalize_match(kind, before + text + after) == normalize_match(kind, text)
