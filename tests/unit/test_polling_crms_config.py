"""A polling source on Pipedrive, Zoho CRM or Dynamics written in a way the vendor's list API
cannot serve is refused when the configuration loads, naming the key and what to write; and
`poll.lookback` is read and bounded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS
from core.config import load_config
from core.errors import ConfigError

WriteConfig = Callable[..., Path]
CONNECTIONS = """
connections:
  pd: {connector: pipedrive, base_url: "https://acme.pipedrive.com",
       auth: {type: api_token, token_env: PD}}
  zoho: {connector: zoho, accounts_url: "https://accounts.zoho.eu",
         auth: {type: oauth2, client_id_env: A, client_secret_env: B, refresh_token_env: C}}
  dv: {connector: dynamics, base_url: "https://org.crm.dynamics.com",
       auth: {type: client_credentials, token_url: "https://login.example/t",
              client_id_env: A, client_secret_env: B}}
"""
HASHES = [f"'{n:040x}'" for n in range(16)]  # quoted: YAML would read all-digit ones as numbers


def _load(write_config: WriteConfig, poll: str) -> object:
    path = write_config(f"sources:\n  s:\n    poll: {poll}\n{CONNECTIONS}")
    return load_config(path, {"PD": "t", "A": "a", "B": "b", "C": "c"}, connectors=CONNECTORS)


@pytest.mark.parametrize(
    ("poll", "key", "message"),
    [
        ("{connection: pd, object: persons, every: 1m, cursor: add_time}",
         "sources.s.poll.cursor", "write `cursor: update_time`"),
        ("{connection: pd, object: persons, every: 1m, cursor: update_time, page_size: 600}",
         "sources.s.poll.page_size", "at most 500 a page"),
        (f"{{connection: pd, object: persons, every: 1m, cursor: update_time, "
         f"fields: [{', '.join(HASHES)}]}}",
         "sources.s.poll.fields", "at most 15 custom fields"),
        ("{connection: zoho, object: Contacts, every: 1m, cursor: Modified_Time}",
         "sources.s.poll.fields", "list them in `fields`"),
        ("{connection: zoho, object: Contacts, every: 1m, cursor: Created_Time, fields: [Email]}",
         "sources.s.poll.cursor", "write `cursor: Modified_Time`"),
        ("{connection: zoho, object: Contacts, every: 1m, cursor: Modified_Time, fields: [Email], "
         "page_size: 201}",
         "sources.s.poll.page_size", "at most 200 a page"),
        ("{connection: dv, object: contacts, every: 1m, cursor: modifiedon, "
         "list: {since_param: s}}",
         "sources.s.poll.list", "applies to http connections"),
        ("{connection: dv, object: contacts, every: 1m, cursor: modifiedon, lookback: 2h}",
         "sources.s.poll.lookback", "lookback is 1s to 1h"),
        ("{connection: dv, object: contacts, every: 1m, cursor: modifiedon, lookback: soon}",
         "sources.s.poll.lookback", ""),
    ],
)  # fmt: skip
def test_a_poll_the_vendor_cannot_serve_is_refused_naming_the_key(
    write_config: WriteConfig, poll: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(write_config, poll)
    found = [(p.key, p.message) for p in caught.value.problems]
    assert any(k == key and message in m for k, m in found), found


def test_a_poll_written_right_loads_with_its_lookback(write_config: WriteConfig) -> None:
    config = _load(
        write_config,
        "{connection: zoho, object: Contacts, every: 5s, cursor: Modified_Time, "
        "fields: [Email, Last_Name], page_size: 200, lookback: 2m}",
    )
    poll = config.sources["s"].poll  # type: ignore[attr-defined]
    assert poll.lookback == 120.0 and poll.page_size == 200


def test_lookback_is_off_unless_written(write_config: WriteConfig) -> None:
    config = _load(
        write_config, "{connection: dv, object: contacts, every: 5s, cursor: modifiedon}"
    )
    assert config.sources["s"].poll.lookback == 0.0  # type: ignore[attr-defined]
