"""The YAML keys the Pipedrive connector adds (core/config/schema.py, connector_checks.py):
the example loads, and a mistake is a problem naming file, line and key."""

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
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipedrive.yaml"
ENV = {"STRIPE_WEBHOOK_SECRET": "s", "PIPEDRIVE_API_TOKEN": "t", "HS": "h"}


def test_the_example_loads_and_maps_a_customer_with_its_organization() -> None:
    config = load_config(EXAMPLE, ENV, connectors=CONNECTORS)
    connection = config.connections["pipedrive"]
    assert connection.auth == {"type": "api_token", "token_env": "PIPEDRIVE_API_TOKEN"}
    mapping = config.mappings["stripe-customer-to-pipedrive-person"]
    event = {
        "type": "customer.created",
        "data": {
            "object": {
                "email": " Ada@Example.COM ",
                "name": "Ada Lovelace",
                "phone": "+44 20 7946 0000",
                "metadata": {"company": " Analytical Engines "},
            }
        },
    }
    result = evaluate(mapping, event)
    assert result.record is not None and result.record.match_value == "ada@example.com"
    assert result.record.values()["phone"] == "+44 20 7946 0000"
    [(link, org)] = result.record.related
    assert (link, org.object, org.match_value) == ("org_id", "organizations", "Analytical Engines")


def problems(
    write_config: WriteConfig, connection: str, env: dict[str, str] = ENV
) -> dict[str, str]:
    text = f"""
    connections:
      pipedrive:
        connector: pipedrive
        base_url: https://acme.pipedrive.com
        auth: {connection}
      other:
        connector: http
        base_url: https://crm.example.com
        auth: {{type: api_token, token_env: HS}}
    """
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(textwrap.dedent(text)), env, connectors=CONNECTORS)
    return {p.key: p.message for p in caught.value.problems}


def test_api_token_needs_token_env_and_is_pipedrives_alone(write_config: WriteConfig) -> None:
    found = problems(write_config, "{type: api_token}")
    assert "required for auth type 'api_token'" in found["connections.pipedrive.auth.token_env"]
    assert "for the pipedrive connector" in found["connections.other.auth.type"]


def test_pipedrive_takes_api_token_or_oauth2(write_config: WriteConfig) -> None:
    found = problems(write_config, "{type: bearer, token_env: PIPEDRIVE_API_TOKEN}")
    assert "api_token or oauth2" in found["connections.pipedrive.auth.type"]


def test_the_api_token_must_be_in_the_environment(write_config: WriteConfig) -> None:
    found = problems(write_config, "{type: api_token, token_env: PD_MISSING}")
    assert "PD_MISSING is not set" in found["connections.pipedrive.auth.token_env"]


def test_oauth2_loads_with_the_default_token_url(write_config: WriteConfig) -> None:
    path = write_config(
        """
        connections:
          pipedrive:
            connector: pipedrive
            base_url: https://api.pipedrive.com
            auth: {type: oauth2, client_id_env: A, client_secret_env: B, refresh_token_env: C}
        """
    )
    config = load_config(path, {"A": "a", "B": "b", "C": "c"}, connectors=CONNECTORS)
    assert config.connections["pipedrive"].auth["type"] == "oauth2"
