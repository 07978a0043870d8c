"""The YAML keys of a Zoho CRM connection (core/config/schema.py, loader.py,
zoho_checks.py): the example loads, and each mistake is a problem naming its key."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS
from core.config import load_config
from core.errors import ConfigError

WriteConfig = Callable[..., Path]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zoho.yaml"
ENV = {
    "STRIPE_WEBHOOK_SECRET": "s",
    "ZOHO_CLIENT_ID": "i",
    "ZOHO_CLIENT_SECRET": "c",
    "ZOHO_REFRESH_TOKEN": "r",
}


def test_the_example_loads_with_its_data_centre() -> None:
    config = load_config(EXAMPLE, ENV, connectors=CONNECTORS)
    zoho = config.connections["zoho"]
    assert (zoho.connector, zoho.accounts_url, zoho.base_url) == (
        "zoho",
        "http://127.0.0.1:8903",
        "http://127.0.0.1:8903",
    )
    mapping = config.mappings["stripe-customer-to-zoho"]
    assert (mapping.object, mapping.match and mapping.match.field) == ("Contacts", "Email")
    [related] = mapping.related
    assert (related.link, related.object) == ("Account_Name", "Accounts")


BASE = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
connections:
  zoho:
    connector: zoho
CONNECTION
mappings:
  m:
    source: stripe
    connection: zoho
    object: OBJECT
    match: {field: Email, from: data.object.email, normalize: email}
    fields: {Last_Name: data.object.name}
"""
OAUTH = (
    "    auth: {type: oauth2, client_id_env: ZOHO_CLIENT_ID, client_secret_env: "
    "ZOHO_CLIENT_SECRET, refresh_token_env: ZOHO_REFRESH_TOKEN}"
)


def problems(write_config: WriteConfig, connection: str, obj: str = "Contacts") -> dict[str, str]:
    text = BASE.replace("CONNECTION", connection).replace("OBJECT", obj)
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(textwrap.dedent(text)), ENV, connectors=CONNECTORS)
    return {p.key: p.message for p in caught.value.problems}


def test_a_zoho_connection_loads_with_accounts_url_and_oauth2(write_config: WriteConfig) -> None:
    text = BASE.replace(
        "CONNECTION", f"    accounts_url: https://accounts.zoho.eu/\n{OAUTH}"
    ).replace("OBJECT", "Leads")
    config = load_config(write_config(textwrap.dedent(text)), ENV, connectors=CONNECTORS)
    assert config.connections["zoho"].accounts_url == "https://accounts.zoho.eu"


def test_a_zoho_connection_without_accounts_url_is_a_problem(write_config: WriteConfig) -> None:
    found = problems(write_config, f"    base_url: https://www.zohoapis.com\n{OAUTH}")
    assert "data centre" in found["connections.zoho.accounts_url"]


def test_no_address_at_all_names_accounts_url(write_config: WriteConfig) -> None:
    found = problems(write_config, OAUTH)
    assert "accounts_url" in found["connections.zoho.base_url"]


def test_accounts_url_must_be_a_url(write_config: WriteConfig) -> None:
    found = problems(write_config, f"    accounts_url: accounts.zoho.eu\n{OAUTH}")
    assert "connections.zoho.accounts_url" in found


def test_a_zoho_connection_needs_oauth2(write_config: WriteConfig) -> None:
    found = problems(
        write_config,
        "    accounts_url: https://accounts.zoho.eu\n    auth: {type: bearer, token_env: T}",
    )
    assert "oauth2" in found["connections.zoho.auth.type"]


@pytest.mark.parametrize("obj", ["contacts", "Deals", "Contact"])
def test_only_the_modules_the_connector_writes_are_accepted(
    write_config: WriteConfig, obj: str
) -> None:
    found = problems(write_config, f"    accounts_url: https://accounts.zoho.eu\n{OAUTH}", obj)
    assert "Contacts, Accounts, Leads" in found["mappings.m.object"]
