"""What `crmhub serve --demo` brings of its own, so it runs from an installed wheel in an
empty directory: a configuration (``crmhub.yaml`` beside this file, the fakes' addresses
filled in from CRMHUB_DEMO_PORT and CRMHUB_DEMO_HUBSPOT_PORT), the signing secrets and OAuth
client its sources and fakes use (for local use only), the two fakes (connectors/fakes/) and
the environment a second shell needs to talk to it (``var/demo/env``).
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from string import Template

from connectors.fakes import FAKE_MODULES
from core.settings import Settings

TEMPLATE = Path(__file__).with_name("crmhub.yaml")
FAKES_HOST = "127.0.0.1"

#: The demo's secrets, used where the environment has none (never for anything real).
DEMO_SECRETS = {
    "STRIPE_WEBHOOK_SECRET": "whsec_demo_stripe_secret_for_local_use_only",
    "FORMS_WEBHOOK_SECRET": "demo-forms-secret",
    "HUBSPOT_CLIENT_ID": "demo-hubspot-client",
    "HUBSPOT_CLIENT_SECRET": "demo-hubspot-client-secret",
    "HUBSPOT_REFRESH_TOKEN": "demo-hubspot-refresh-token",
}


def crm_url(settings: Settings) -> str:
    return f"http://{FAKES_HOST}:{settings.demo_port}"


def hubspot_url(settings: Settings) -> str:
    return f"http://{FAKES_HOST}:{settings.demo_hubspot_port}"


def config_text(settings: Settings) -> str:
    """The demo's configuration with the fakes' addresses filled in."""
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        DEMO_CRM_URL=crm_url(settings), DEMO_HUBSPOT_URL=hubspot_url(settings)
    )


def demo_dir(settings: Settings) -> Path:
    return (settings.var_dir / "demo").absolute()


def prepare(settings: Settings) -> Settings:
    """The settings the demo runs with: the demo's secrets where the environment has none, and
    its own configuration (written under the var directory) unless CRMHUB_CONFIG names one or
    ./crmhub.yaml exists."""
    environ = dict(settings.environ)
    for name, value in DEMO_SECRETS.items():
        if not environ.get(name):
            environ[name] = value
    config_path = settings.config_path
    if not environ.get("CRMHUB_CONFIG") and not config_path.exists():
        config_path = demo_dir(settings) / "crmhub.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config_text(settings), encoding="utf-8")
    environ["CRMHUB_CONFIG"] = str(config_path.absolute())
    return replace(settings, config_path=config_path.absolute(), environ=environ)


def with_operator_token(settings: Settings) -> Settings:
    """The settings with the demo's operator token in their environment, unless one is set:
    the operator API and dashboard are on in the demo."""
    environ = dict(settings.environ)
    if environ.get("CRMHUB_OPERATOR_TOKEN") or environ.get("CRMHUB_OPERATOR_TOKENS"):
        return settings
    environ["CRMHUB_OPERATOR_TOKEN"] = operator_token(settings)
    return replace(settings, environ=environ)


def operator_token(settings: Settings) -> str:
    """The demo's admin token for the operator API and dashboard: made at random on the first
    run and kept under the var directory (this user only), so a signed-in browser stays signed
    in across `make run`s. Never a fixed one: the demo's receiver listens on 0.0.0.0 too."""
    path = demo_dir(settings) / "operator-token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def port_clash(settings: Settings, receiver_port: int) -> str | None:
    """Two of the receiver and the fakes on one port: a sentence saying which, or None."""
    ports = {
        "the receiver (--port / CRMHUB_PORT)": receiver_port,
        "the demo CRM (CRMHUB_DEMO_PORT)": settings.demo_port,
        "the fake HubSpot (CRMHUB_DEMO_HUBSPOT_PORT)": settings.demo_hubspot_port,
    }
    names = list(ports)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if ports[first] == ports[second]:
                return (
                    f"{first} and {second} are both set to port {ports[first]}; give each its own"
                )
    return None


def fake_commands(settings: Settings) -> dict[str, list[str]]:
    """The fakes' command lines, by the name the supervisor gives each."""
    py, env = sys.executable, settings.environ
    return {
        "demo target": [
            py,
            "-m",
            FAKE_MODULES["http"],
            "--host",
            FAKES_HOST,
            "--port",
            str(settings.demo_port),
        ],
        "fake hubspot": [
            py,
            "-m",
            FAKE_MODULES["hubspot"],
            "--host",
            FAKES_HOST,
            "--port",
            str(settings.demo_hubspot_port),
            "--client-id",
            env.get("HUBSPOT_CLIENT_ID", ""),
            "--client-secret",
            env.get("HUBSPOT_CLIENT_SECRET", ""),
            "--refresh-token",
            env.get("HUBSPOT_REFRESH_TOKEN", ""),
        ],
    }


def write_env_file(settings: Settings, host: str, port: int) -> Path:
    """``var/demo/env``: what a second shell sources (``. var/demo/env``) for the crmhub
    commands there to reach this hub: its configuration, secrets, address and Redis."""
    names = [
        "CRMHUB_CONFIG",
        *DEMO_SECRETS,
        "CRMHUB_OPERATOR_TOKEN",
        "CRMHUB_REDIS_URL",
        "CRMHUB_BROKER_URL",
        "CRMHUB_KEY_PREFIX",
    ]
    values = {name: settings.environ[name] for name in names if settings.environ.get(name)}
    values.update(
        CRMHUB_VAR_DIR=str(settings.var_dir.absolute()), CRMHUB_HOST=host, CRMHUB_PORT=str(port)
    )
    path = demo_dir(settings) / "env"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# `crmhub serve --demo`'s environment for another shell: . {path}",
        *(f"export {name}={shlex.quote(value)}" for name, value in values.items()),
    ]
    # it holds the secrets in use, which need not be the demo's: for this user only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
