"""The YAML the Dynamics connector adds (core/config/schema.py `alternate_keys`, the
connector's own rules through `config_problems`): the example loads, a match field that is no
alternate key is a problem saying how to fix it, and Entra ID's token URL is required."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS
from core.config import load_config
from core.errors import ConfigError
from core.mapping.engine import evaluate

WriteConfig = Callable[..., Path]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dynamics.yaml"
ENV = {"STRIPE_WEBHOOK_SECRET": "w", "DYNAMICS_CLIENT_ID": "i", "DYNAMICS_CLIENT_SECRET": "s"}


def test_the_example_loads_with_its_alternate_keys_and_related_account() -> None:
    config = load_config(EXAMPLE, ENV, connectors=CONNECTORS)
    dynamics = config.connections["dynamics"]
    assert dynamics.alternate_keys == {"contacts": ("emailaddress1",), "accounts": ("name",)}
    assert dynamics.auth["token_url"].endswith("/oauth2/v2.0/token")
    mapping = config.mappings["stripe-customer-to-contact"]
    event = {
        "type": "customer.created",
        "data": {
            "object": {
                "email": " Ada@X.com ",
                "name": "Ada Lovelace",
                "metadata": {"company": " Acme Ltd "},
            }
        },
    }
    result = evaluate(mapping, event)
    assert result.record is not None and result.record.match_value == "ada@x.com"
    [(link, account)] = result.record.related
    assert (link, account.object, account.match_value) == (
        "parentcustomerid_account@odata.bind",
        "accounts",
        "Acme Ltd",
    )


BASE = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
connections:
  dynamics:
    connector: dynamics
    base_url: https://org.crm.dynamics.com
    auth: {type: client_credentials, client_id_env: DYNAMICS_CLIENT_ID,
           client_secret_env: DYNAMICS_CLIENT_SECRET%(token_url)s}
%(keys)s
mappings:
  contacts:
    source: stripe
    connection: dynamics
    object: contacts
    match: {field: %(match)s, from: data.object.email, normalize: email}
    fields:
      lastname: data.object.name
    related:
      parentcustomerid_account@odata.bind: {object: accounts,
          match: {field: %(related)s, from: data.object.metadata.company}}
"""
TOKEN_URL = ",\n           token_url: https://login.microsoftonline.com/t/oauth2/v2.0/token"
KEYS = "    alternate_keys: {contacts: [emailaddress1], accounts: [accountnumber]}"


def problems(write_config: WriteConfig, **values: str) -> dict[str, str]:
    text = BASE % {
        "token_url": TOKEN_URL,
        "keys": KEYS,
        "match": "emailaddress1",
        "related": "accountnumber",
        **values,
    }
    path = write_config(textwrap.dedent(text))
    try:
        load_config(path, ENV, connectors=CONNECTORS)
    except ConfigError as exc:
        return {p.key: p.message for p in exc.problems}
    return {}


def test_match_fields_on_declared_alternate_keys_load(write_config: WriteConfig) -> None:
    assert problems(write_config) == {}


def test_a_match_field_that_is_no_alternate_key_is_a_problem_saying_how_to_fix_it(
    write_config: WriteConfig,
) -> None:
    found = problems(write_config, match="lastname", related="name")
    assert set(found) == {
        "mappings.contacts.match.field",
        "mappings.contacts.related.parentcustomerid_account@odata.bind.match.field",
    }
    message = found["mappings.contacts.match.field"]
    assert "'lastname' is not one declared for 'contacts'" in message
    assert "(declared: emailaddress1)" in message
    assert "connections.dynamics.alternate_keys.contacts" in message


def test_no_alternate_keys_at_all_is_a_problem_too(write_config: WriteConfig) -> None:
    found = problems(write_config, keys="")
    assert "(declared: none)" in found["mappings.contacts.match.field"]


def test_entra_ids_token_url_is_required(write_config: WriteConfig) -> None:
    found = problems(write_config, token_url="")
    assert "login.microsoftonline.com" in found["connections.dynamics.auth.token_url"]


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ("    alternate_keys: {contacts: [EmailAddress1]}", "logical name"),
        ("    alternate_keys: {contacts: []}", "at least one key column"),
        ("    alternate_keys: [emailaddress1]", "Not a valid mapping"),
    ],
)
def test_alternate_keys_are_checked_for_shape(
    write_config: WriteConfig, keys: str, why: str
) -> None:
    found = problems(write_config, keys=keys)
    assert any(why in message for key, message in found.items() if "alternate_keys" in key), found


def test_other_connectors_keep_their_own_rules(write_config: WriteConfig) -> None:
    # the rule is the dynamics connector's: an http connection matching on any field loads
    text = (BASE % {"token_url": TOKEN_URL, "keys": "", "match": "email", "related": "x"}).replace(
        "connector: dynamics", "connector: http"
    )
    load_config(write_config(textwrap.dedent(text)), ENV, connectors=CONNECTORS)
