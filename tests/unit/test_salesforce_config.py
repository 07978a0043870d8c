"""The YAML keys the Salesforce connector and `fetch:` / `related:` mappings add
(core/config/schema.py, loader.py): the textbook example loads, and a mistake in any of them
is a problem naming file, line and key."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import CONNECTORS
from core.config import load_config
from core.errors import ConfigError
from core.mapping.engine import evaluate
from core.mapping.record import record_key

WriteConfig = Callable[..., Path]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "salesforce.yaml"
ENV = {
    "HUBSPOT_CLIENT_SECRET": "s",
    "HUBSPOT_TOKEN": "t",
    "SF_CLIENT_ID": "i",
    "SF_CLIENT_SECRET": "c",
    "SF_REFRESH_TOKEN": "r",
}


def test_the_textbook_example_loads() -> None:
    config = load_config(EXAMPLE, ENV, connectors=CONNECTORS)
    sf = config.connections["salesforce"]
    assert (sf.login_url, sf.base_url, sf.api_version) == (
        "http://127.0.0.1:8902",
        "http://127.0.0.1:8902",
        "62.0",
    )
    mapping = config.mappings["hubspot-contact-to-salesforce"]
    assert mapping.fetch is not None and mapping.fetch.connection == "hubspot"
    assert mapping.fetch.properties == ("firstname", "lastname", "email", "jobtitle", "company")
    [related] = mapping.related
    assert (related.link, related.object, related.match.field) == ("AccountId", "Account", "Name")


def test_a_fetch_mapping_serialises_writes_on_the_fetched_record_and_shows_related() -> None:
    mapping = load_config(EXAMPLE, ENV).mappings["hubspot-contact-to-salesforce"]
    event = {"objectId": 512, "subscriptionType": "contact.propertyChange"}
    assert record_key(mapping, event, "dlv_1") == ("salesforce:Contact:fetch=hubspot/contacts/512")
    fetched = {
        **event,
        "fetched": {
            "properties": {"email": " Ada@X.com", "lastname": "L", "company": " Acme Ltd "}
        },
    }
    result = evaluate(mapping, fetched)
    assert result.record is not None and result.record.match_value == "ada@x.com"
    [(link, account)] = result.record.related
    assert (link, account.object, account.match_value) == ("AccountId", "Account", "Acme Ltd")
    [shown] = [r.as_json() for r in result.related]
    assert shown["operation"] == "find_or_create"
    no_company = {**event, "fetched": {"properties": {"email": "a@x.com", "lastname": "L"}}}
    assert evaluate(mapping, no_company).related[0].as_json()["operation"] == "skip"


def problems(
    write_config: WriteConfig, text: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    path = write_config(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV if env is None else env, connectors=CONNECTORS)
    return {p.key: p.message for p in caught.value.problems}


BASE = """
sources:
  hubspot:
    verify: {scheme: hubspot, version: v3, secret_env: HUBSPOT_CLIENT_SECRET}
    event_id: eventId
connections:
  hubspot:
    connector: hubspot
    base_url: https://api.hubapi.com
    auth: {type: bearer, token_env: HUBSPOT_TOKEN}
  salesforce:
    connector: salesforce
CONNECTION
mappings:
  m:
    source: hubspot
    connection: salesforce
    object: Contact
    match: {field: Email, from: fetched.properties.email, normalize: email, external_id: true}
    fetch: FETCH
    fields: {LastName: fetched.properties.lastname}
"""
GOOD_FETCH = "{connection: hubspot, object: contacts, id: objectId}"


def test_a_connection_needs_base_url_or_login_url(write_config: WriteConfig) -> None:
    found = problems(write_config, BASE.replace("CONNECTION", "").replace("FETCH", GOOD_FETCH))
    assert "login_url" in found["connections.salesforce.base_url"]


@pytest.mark.parametrize(
    ("connection", "key", "words"),
    [
        (
            "    login_url: https://login.salesforce.com\n    api_version: v62",
            "connections.salesforce.api_version",
            "62.0",
        ),
        (
            "    login_url: https://login.salesforce.com\n    auth: {type: client_credentials}",
            "connections.salesforce.auth.client_id_env",
            "client_credentials",
        ),
    ],
)
def test_salesforce_keys_are_checked(
    write_config: WriteConfig, connection: str, key: str, words: str
) -> None:
    found = problems(
        write_config, BASE.replace("CONNECTION", connection).replace("FETCH", GOOD_FETCH)
    )
    assert words in found[key]


def test_fetch_names_a_defined_connection(write_config: WriteConfig) -> None:
    text = BASE.replace("CONNECTION", "    login_url: https://login.salesforce.com").replace(
        "FETCH", "{connection: hubspt, object: contacts, id: objectId}"
    )
    assert (
        "no connection named 'hubspt'"
        in problems(write_config, text)["mappings.m.fetch.connection"]
    )


def test_client_credentials_loads_without_a_refresh_token(write_config: WriteConfig) -> None:
    text = BASE.replace(
        "CONNECTION",
        "    login_url: https://login.salesforce.com\n"
        "    auth: {type: client_credentials, client_id_env: SF_CLIENT_ID,\n"
        "           client_secret_env: SF_CLIENT_SECRET}",
    ).replace("FETCH", GOOD_FETCH)
    config = load_config(write_config(textwrap.dedent(text)), ENV, connectors=CONNECTORS)
    assert config.connections["salesforce"].auth["type"] == "client_credentials"
    assert config.mappings["m"].match is not None and config.mappings["m"].match.external_id


# the dry run of a fetch/related mapping (`crmhub mappings test`) ---------------------------
def dry_run_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, dict[str, Any]]:
    import fakeredis
    from conftest import crmhub, hub_ledger, make_settings

    from connectors.fakes.hubspot import FakeHubSpot
    from connectors.fakes.transport import FakeTransport
    from connectors.hubspot import HubSpotConnector

    fake = FakeHubSpot(private_app_token="t")
    fake.add_record(
        "contacts", email="Ada@Example.com", lastname="Lovelace", company="Analytical Engines"
    )
    object_id = fake.records("contacts")[0]["id"]

    class InProcess(HubSpotConnector):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, transport=FakeTransport(fake), **kw)

    monkeypatch.setitem(CONNECTORS, "hubspot", InProcess)
    payload = tmp_path / "event.json"
    payload.write_text(
        json.dumps({"objectId": int(object_id), "subscriptionType": "contact.creation"})
    )
    settings = make_settings(EXAMPLE, "dry", redis_url="redis://unused", **ENV)
    ledger = hub_ledger(settings, fakeredis.FakeRedis())
    result = crmhub(
        settings,
        "mappings",
        "test",
        "hubspot-contact-to-salesforce",
        str(payload),
        *args,
        "--json",
        ledger=ledger,
    )
    return result.exit_code, json.loads(result.output)


def test_the_dry_run_shows_the_fetch_and_reads_it_with_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, shown = dry_run_cli(tmp_path, monkeypatch)
    assert shown["fetch"]["read"] is False and "--fetch" in shown["fetch"]["note"]
    assert code == 1  # nothing fetched: the match key is not known
    code, shown = dry_run_cli(tmp_path, monkeypatch, "--fetch")
    assert code == 0 and shown["fetch"]["read"] is True
    assert shown["match"]["value"] == "ada@example.com"
    [related] = shown["related"]
    assert related["operation"] == "find_or_create"
    assert related["match"] == {"field": "Name", "value": "Analytical Engines"}


def test_a_payload_may_carry_the_fetched_record(tmp_path: Path) -> None:
    from conftest import crmhub, make_settings

    payload = tmp_path / "event.json"
    fetched = {"properties": {"email": " Ada@X.com", "lastname": "L", "company": "Acme"}}
    payload.write_text(
        json.dumps({"objectId": 7, "subscriptionType": "contact.creation", "fetched": fetched})
    )
    settings = make_settings(EXAMPLE, "dry", redis_url="redis://unused", **ENV)
    shown = crmhub(settings, "mappings", "test", "hubspot-contact-to-salesforce", str(payload))
    assert shown.exit_code == 0
    assert "given in the payload" in shown.output
    assert "find or create Account by Name = Acme, then link it" in shown.output
    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps({"objectId": 7, "subscriptionType": "contact.creation"}))
    unknown = crmhub(settings, "mappings", "test", "hubspot-contact-to-salesforce", str(thin))
    assert "unknown until the record is fetched" in unknown.output
