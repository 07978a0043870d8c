"""Loading crmhub.yaml (core/config): every problem at once, each with file:line and key, and
`crmhub config check` on top of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import crmhub, make_settings
from hubtest import CRM_CONFIG as VALID
from hubtest import CRM_ENV as VALID_ENV

from app.cli.common import EXIT_CONFIG
from app.demo import DEMO_SECRETS
from connectors.registry import CONNECTORS
from core.config import Config, RateLimit, load_config
from core.errors import ConfigError, ConfigProblem

WriteConfig = Callable[..., Path]  # the conftest fixture

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crmhub.yaml"
# exactly the secrets `crmhub serve --demo` supplies
EXAMPLE_ENV = dict(DEMO_SECRETS)


def problems_of(
    path: Path, environ: dict[str, str] | None = None, **kw: object
) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, VALID_ENV if environ is None else environ, **kw)  # type: ignore[arg-type]
    return info.value.problems


def by_key(problems: list[ConfigProblem]) -> dict[str, ConfigProblem]:
    return {p.key: p for p in problems}


# what loads -----------------------------------------------------------------------------
def test_the_example_config_loads_with_its_secrets_set() -> None:
    config = load_config(EXAMPLE, EXAMPLE_ENV, connectors=CONNECTORS)
    assert {"stripe", "signup-form"} <= set(config.sources)
    assert {"hubspot", "demo-crm"} <= set(config.connections)
    assert config.connections["hubspot"].connector == "hubspot"
    assert {"stripe-customer-to-hubspot-contact", "signup-to-contact"} <= set(config.mappings)
    demo = config.connections["demo-crm"]
    assert demo.rate_limit is not None and demo.rate_limit.requests == 100
    assert demo.retry.base_seconds == 2 and demo.retry.give_up_after_seconds == 86400
    assert {m.source for m in config.mappings_for("stripe")} == {"stripe"}


def test_a_rate_limit_is_a_rolling_window_unless_it_names_a_burst(
    write_config: WriteConfig,
) -> None:
    def rate_of(line: str) -> object:
        text = VALID.replace("    auth:", f"    rate_limit: {line}\n    auth:", 1)
        assert line in text
        config = load_config(write_config(text), VALID_ENV, connectors=CONNECTORS)
        return config.connections["crm"].rate_limit

    assert rate_of("{requests: 20, per_seconds: 1}") == RateLimit(20, 1.0, None)
    assert rate_of("{requests: 20, per_seconds: 1, burst: 5}") == RateLimit(20, 1.0, 5)
    bad = VALID.replace(
        "    auth:", "    rate_limit: {requests: 20, per_seconds: 1, burst: 0}\n    auth:", 1
    )
    assert "connections.crm.rate_limit.burst" in by_key(problems_of(write_config(bad)))


def test_the_example_config_without_its_secrets_names_each_missing_variable() -> None:
    problems = problems_of(EXAMPLE, {})
    messages = [str(p) for p in problems]
    assert any("STRIPE_WEBHOOK_SECRET is not set" in m for m in messages)
    assert any("FORMS_WEBHOOK_SECRET is not set" in m for m in messages)
    assert all(m.startswith(f"{EXAMPLE}:") for m in messages)


def test_a_valid_config_is_built(write_config: WriteConfig) -> None:
    config = load_config(write_config(VALID), VALID_ENV)
    assert isinstance(config, Config)
    assert config.connections["crm"].base_url == "https://crm.example.com/api"
    mapping = config.mappings["customer-to-contact"]
    assert mapping.when.event_types == ("customer.created", "customer.updated")
    assert mapping.match is not None and mapping.match.normalize == "email"
    assert [f.name for f in mapping.fields] == ["email", "name"]
    assert mapping.fields[0].required and not mapping.fields[1].required


@pytest.mark.parametrize("mappings", ["mappings: {}\n", "mappings:\n", ""])
def test_no_mappings_is_valid(write_config: WriteConfig, mappings: str) -> None:
    text = VALID.split("mappings:")[0] + mappings
    config = load_config(write_config(text), VALID_ENV)
    assert config.mappings == {}


def test_secret_env_may_list_several_variables_for_rotation(write_config: WriteConfig) -> None:
    path = write_config(
        VALID.replace(
            "secret_env: STRIPE_WEBHOOK_SECRET", "secret_env: [STRIPE_WEBHOOK_SECRET, STRIPE_OLD]"
        )
    )
    config = load_config(path, {**VALID_ENV, "STRIPE_OLD": "whsec_old"})
    assert config.sources["stripe"].secret_env == ("STRIPE_WEBHOOK_SECRET", "STRIPE_OLD")
    [problem] = problems_of(path)
    assert problem.key == "sources.stripe.verify.secret_env"
    assert problem.line == 3
    assert "STRIPE_OLD is not set" in problem.message


def test_secrets_are_not_checked_when_not_asked(write_config: WriteConfig) -> None:
    config = load_config(write_config(VALID), {}, check_secrets=False)
    assert "crm" in config.connections


# every problem, with its place ----------------------------------------------------------
def test_every_shape_problem_is_reported_at_once_with_file_line_and_key(
    write_config: WriteConfig,
) -> None:
    path = write_config("""\
        sources:
          stripe:
            verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
            event_idd: id
        connections:
          crm:
            connector: http
            base_url: not a url
            timeout_seconds: 0
        mappings:
          m:
            source: stripe
            connection: crm
            object: contacts
            action: upsrt
            match: {field: email, from: data.object.email}
            fields:
              email: {from: data.object.email, required: yes please}
    """)
    problems = problems_of(path)
    found = {p.key: p.line for p in problems}
    assert found == {
        "sources.stripe.event_idd": 4,
        "connections.crm.base_url": 8,
        "connections.crm.timeout_seconds": 9,
        "mappings.m.action": 15,
        "mappings.m.fields.email.required": 18,
    }
    assert all(p.file == str(path) for p in problems)
    text = str(by_key(problems)["connections.crm.base_url"])
    assert text.startswith(f"{path}:8: connections.crm.base_url: ")


def test_reference_and_secret_problems_are_reported_together(write_config: WriteConfig) -> None:
    path = write_config(
        VALID.replace("source: stripe", "source: stripee").replace(
            "connection: crm", "connection: crn"
        )
    )
    problems = by_key(problems_of(path, {}))
    assert set(problems) == {
        "mappings.customer-to-contact.source",
        "mappings.customer-to-contact.connection",
        "sources.stripe.verify.secret_env",
        "connections.crm.auth.token_env",
    }
    source = problems["mappings.customer-to-contact.source"]
    assert source.line == 14
    assert "no source named 'stripee' (defined: stripe)" in source.message
    connection = problems["mappings.customer-to-contact.connection"]
    assert connection.line == 16
    assert "no connection named 'crn' (defined: crm)" in connection.message
    assert "CRM_TOKEN is not set" in problems["connections.crm.auth.token_env"].message
    assert problems["connections.crm.auth.token_env"].line == 11


TYPO_BASE = """\
sources:
  stripe:
    verify: {scheme: stripe, secret_env: S}
    {SOURCE}
connections:
  crm:
    connector: http
    base_url: https://crm.example.com
    {CONNECTION}
mappings:
  m:
    source: stripe
    connection: crm
    object: contacts
    match: {field: email, from: a}
    {MAPPING}
    fields:
      name: a
      {FIELD}
"""


@pytest.mark.parametrize(
    "place, typo, key, suggestion",
    [
        ("SOURCE", "event_idd: id", "sources.stripe.event_idd", "event_id"),
        ("SOURCE", "verify2: {}", "sources.stripe.verify2", "verify"),
        ("CONNECTION", "timeout_secs: 5", "connections.crm.timeout_secs", "timeout_seconds"),
        (
            "CONNECTION",
            "retry: {base_second: 5}",
            "connections.crm.retry.base_second",
            "base_seconds",
        ),
        (
            "CONNECTION",
            "auth: {type: bearer, token_evn: T}",
            "connections.crm.auth.token_evn",
            "token_env",
        ),
        ("MAPPING", "acton: upsert", "mappings.m.acton", "action"),
        ("MAPPING", "when: {event_types: [a]}", "mappings.m.when.event_types", "event_type"),
        (
            "MAPPING",
            "when: {fields: [{path: type, equal: x}]}",
            "mappings.m.when.fields.0.equal",
            "equals",
        ),
        ("FIELD", "email: {from: a, requird: true}", "mappings.m.fields.email.requird", "required"),
    ],
)
def test_an_unknown_key_suggests_the_closest_known_one(
    write_config: WriteConfig, place: str, typo: str, key: str, suggestion: str
) -> None:
    text = TYPO_BASE
    for name in ("SOURCE", "CONNECTION", "MAPPING", "FIELD"):
        text = text.replace("{" + name + "}", typo if name == place else "")
    path = write_config(text)
    problem = by_key(problems_of(path, {"S": "x", "T": "y"}))[key]
    assert f"did you mean {suggestion!r}?" in problem.message
    assert "expected one of:" in problem.message
    assert problem.line is not None
    assert key.rsplit(".", 1)[1] in path.read_text().splitlines()[problem.line - 1]


def test_an_unknown_top_level_section_suggests_the_right_one(write_config: WriteConfig) -> None:
    problem = by_key(problems_of(write_config(VALID + "mapings: {}\n")))["mapings"]
    assert "did you mean 'mappings'?" in problem.message
    assert problem.line == 22


def test_scheme_none_needs_allow_unsigned(write_config: WriteConfig) -> None:
    unsigned = "sources:\n  forms:\n    verify: {scheme: none}\n"
    [problem] = problems_of(write_config(unsigned), {})
    assert problem.key == "sources.forms.allow_unsigned"
    assert "allow_unsigned: true" in problem.message
    assert problem.line == 2
    config = load_config(write_config(unsigned + "    allow_unsigned: true\n"), {})
    assert config.sources["forms"].allow_unsigned


def test_a_signed_scheme_needs_secret_env(write_config: WriteConfig) -> None:
    [problem] = problems_of(write_config("sources:\n  gh:\n    verify: {scheme: github}\n"), {})
    assert problem.key == "sources.gh.verify.secret_env"
    assert "environment variable" in problem.message


def test_secret_env_must_name_environment_variables(write_config: WriteConfig) -> None:
    path = write_config(
        "sources:\n  s:\n    verify: {scheme: stripe, secret_env: [OK, whsec_abc-1]}\n"
    )
    [problem] = problems_of(path, {"OK": "x"})
    assert problem.key == "sources.s.verify.secret_env"
    assert "not an environment variable name" in problem.message


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_hubspot_takes_a_signature_version(write_config: WriteConfig, version: str) -> None:
    path = write_config(
        f"sources:\n  hs:\n    verify: {{scheme: hubspot, version: {version}, secret_env: HS}}\n"
    )
    assert load_config(path, {"HS": "x"}).sources["hs"].verify.version == version


def test_hubspot_version_must_be_known_and_only_for_hubspot(write_config: WriteConfig) -> None:
    path = write_config("""\
        sources:
          hs:
            verify: {scheme: hubspot, version: v4, secret_env: HS}
          st:
            verify: {scheme: stripe, version: v3, secret_env: ST}
    """)
    problems = by_key(problems_of(path, {"HS": "x", "ST": "y"}))
    assert set(problems) == {"sources.hs.verify.version", "sources.st.verify.version"}
    assert "v1, v2, v3" in problems["sources.hs.verify.version"].message
    assert "hubspot scheme only" in problems["sources.st.verify.version"].message
    assert problems["sources.st.verify.version"].line == 5


def test_an_unknown_connector_is_reported_when_the_registry_is_given(
    write_config: WriteConfig,
) -> None:
    path = write_config(VALID.replace("connector: http", "connector: htp"))
    [problem] = problems_of(path, connectors=CONNECTORS)
    assert problem.key == "connections.crm.connector" and problem.line == 9
    said, _, listed = problem.message.partition("; expected one of: ")
    assert said == "unknown connector 'htp'"
    assert listed.split(", ") == sorted(CONNECTORS)


def test_newest_wins_needs_the_source_timestamp(write_config: WriteConfig) -> None:
    path = write_config(
        VALID.replace("    occurred_at: created\n", "").replace(
            "    object: contacts\n", "    object: contacts\n    conflict: newest_wins\n"
        )
    )
    [problem] = problems_of(path)
    assert problem.key == "mappings.customer-to-contact.conflict"
    assert "occurred_at" in problem.message


def test_a_duplicate_key_is_an_error_at_its_second_line(write_config: WriteConfig) -> None:
    path = write_config(
        VALID
        + """\
  customer-to-contact:
    source: stripe
    connection: crm
    object: companies
    match: {field: domain, from: data.object.domain}
"""
    )
    [problem] = problems_of(path)
    assert problem.key == "mappings.customer-to-contact"
    assert problem.line == 22
    assert "duplicate key" in problem.message


def test_malformed_yaml_names_the_line(write_config: WriteConfig) -> None:
    path = write_config("sources:\n  stripe:\n    verify: {scheme: stripe\n  other: 1\n")
    [problem] = problems_of(path)
    assert problem.line == 4
    assert problem.message.startswith("not valid YAML")
    assert str(problem).startswith(f"{path}:4: ")


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nope.yaml")
    assert "CRMHUB_CONFIG" in problem.message


def test_a_document_that_is_not_a_mapping_is_refused(write_config: WriteConfig) -> None:
    [problem] = problems_of(write_config("- sources\n- connections\n"))
    assert "expected a mapping" in problem.message


# crmhub config check --------------------------------------------------------------------
def check(path: Path, key_prefix: str, *args: str, **env: str) -> Result:
    return crmhub(make_settings(path, key_prefix, **env), "config", "check", *args)


def test_config_check_ok(write_config: WriteConfig, key_prefix: str) -> None:
    path = write_config(VALID)
    result = check(path, key_prefix, **VALID_ENV)
    assert result.exit_code == 0
    assert f"{path}: OK (1 sources, 1 connections, 1 mappings)" in result.output
    as_json = check(path, key_prefix, "--json", **VALID_ENV)
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == {
        "ok": True,
        "file": str(path),
        "sources": ["stripe"],
        "connections": ["crm"],
        "mappings": ["customer-to-contact"],
    }


def test_config_check_lists_every_problem_and_exits_2(
    write_config: WriteConfig, key_prefix: str
) -> None:
    path = write_config(VALID.replace("connection: crm", "connection: crn"))
    result = check(path, key_prefix)  # and no secrets in the environment
    assert result.exit_code == EXIT_CONFIG == 2
    lines = result.output.strip().splitlines()
    assert lines[-1] == "3 problem(s) found."
    assert (
        f"{path}:16: mappings.customer-to-contact.connection: no connection named 'crn'"
        in result.output
    )
    assert "STRIPE_WEBHOOK_SECRET is not set" in result.output

    as_json = check(path, key_prefix, "--json")
    assert as_json.exit_code == 2
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is False
    assert len(payload["problems"]) == 3
    assert {
        "file": str(path),
        "line": 16,
        "key": "mappings.customer-to-contact.connection",
        "message": "no connection named 'crn' (defined: crm)",
    } in payload["problems"]


def test_config_check_of_malformed_yaml_exits_2_with_the_line(
    write_config: WriteConfig, key_prefix: str
) -> None:
    path = write_config("sources: [\n")
    result = check(path, key_prefix, "--json")
    assert result.exit_code == 2
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["line"] == 2 and problem["message"].startswith("not valid YAML")


def test_config_check_lists_shape_reference_and_secret_problems_together(
    write_config: WriteConfig, key_prefix: str
) -> None:
    """Before: a shape problem hid every missing secret and every dangling reference, so each
    fix-and-retry revealed the next problem."""
    path = write_config(
        VALID.replace("    event_type: type\n", "    event_typ: type\n")
        .replace("token_env: CRM_TOKEN}", "token_env: CRM_TOKEN}\n    timeout_seconds: -1")
        .replace("connection: crm\n", "connection: crn\n")
    )
    result = check(path, key_prefix, "--json")  # no secrets set
    assert result.exit_code == EXIT_CONFIG
    found = {(p["key"], p["line"]) for p in json.loads(result.stdout)["problems"]}
    assert found == {
        ("sources.stripe.event_typ", 5),  # shape
        ("sources.stripe.verify.secret_env", 3),  # secret
        ("connections.crm.auth.token_env", 11),  # secret
        ("connections.crm.timeout_seconds", 12),  # shape
        ("mappings.customer-to-contact.connection", 17),  # reference
    }
    text = check(path, key_prefix)
    lines = text.output.splitlines()
    assert lines[-1] == "5 problem(s) found."
    assert [int(line.split(":")[1]) for line in lines[:-1]] == [3, 5, 11, 12, 17]  # file order
    assert (
        f"{path}:11: connections.crm.auth.token_env: environment variable CRM_TOKEN is "
        "not set" in text.output
    )


def test_an_entry_with_a_shape_problem_still_has_its_secrets_and_references_checked(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        VALID.replace(
            "    auth: {type: bearer, token_env: CRM_TOKEN}",
            "    auth: {type: bearer, token_env: CRM_TOKEN}\n    connectr: http",
        )
        .replace("    object: contacts\n", "    object: contacts\n    acton: upsert\n")
        .replace("source: stripe\n", "source: stripee\n")
    )
    problems = by_key(problems_of(path, {"STRIPE_WEBHOOK_SECRET": "x"}))
    assert set(problems) == {
        "connections.crm.connectr",
        "connections.crm.auth.token_env",
        "mappings.customer-to-contact.acton",
        "mappings.customer-to-contact.source",
    }
    # the connection is invalid, not missing: the mapping naming it is not told otherwise
    assert "mappings.customer-to-contact.connection" not in problems


def test_duplicate_keys_are_reported_with_every_other_problem(write_config: WriteConfig) -> None:
    path = write_config(VALID.replace("    event_id: id\n", "    event_id: id\n    event_id: x\n"))
    problems = by_key(problems_of(path, {}))
    assert problems["sources.stripe.event_id"].message.startswith("duplicate key")
    assert "sources.stripe.verify.secret_env" in problems


def test_config_check_reports_an_unknown_connector(
    write_config: WriteConfig, key_prefix: str
) -> None:
    """The worker refuses a connector it does not know; so must the check (and reload)."""
    path = write_config(VALID.replace("connector: http", "connector: htp"))
    result = check(path, key_prefix, **VALID_ENV)
    assert result.exit_code == EXIT_CONFIG
    assert "connections.crm.connector: unknown connector 'htp'" in result.output
