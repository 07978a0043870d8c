"""What `crmhub serve --demo` brings of its own (app/demo/): its configuration with the fakes'
ports from CRMHUB_DEMO_PORT / CRMHUB_DEMO_HUBSPOT_PORT, its secrets where the environment has
none, the environment file for a second shell. (tests/e2e/test_serve.py runs the demo itself;
tests/e2e/test_production_install.py runs it from the installed wheel.)"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from app import demo
from connectors.registry import CONNECTORS
from core.config import load_config
from core.errors import ConfigError
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory to run in, as after `pip install crmhub`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_without_a_configuration_the_demo_writes_its_own_on_the_demo_ports(here: Path) -> None:
    settings = demo.prepare(
        Settings.from_env({"CRMHUB_DEMO_PORT": "9100", "CRMHUB_DEMO_HUBSPOT_PORT": "9101"})
    )
    assert settings.config_path == here / "var" / "demo" / "crmhub.yaml"
    assert settings.environ["CRMHUB_CONFIG"] == str(settings.config_path)
    # everything it needs is there: the configuration loads with every secret checked
    config = load_config(
        settings.config_path, settings.environ, check_secrets=True, connectors=CONNECTORS
    )
    hubspot, crm = config.connections["hubspot"], config.connections["demo-crm"]
    assert hubspot.base_url == "http://127.0.0.1:9101"
    assert hubspot.auth["token_url"] == "http://127.0.0.1:9101/oauth/v1/token"
    assert crm.base_url == "http://127.0.0.1:9100"
    assert {name: settings.environ[name] for name in demo.DEMO_SECRETS} == demo.DEMO_SECRETS


def test_the_fakes_run_on_the_demo_ports_with_the_oauth_client_the_configuration_uses(
    here: Path,
) -> None:
    settings = demo.prepare(
        Settings.from_env(
            {
                "CRMHUB_DEMO_PORT": "9100",
                "CRMHUB_DEMO_HUBSPOT_PORT": "9101",
                "HUBSPOT_CLIENT_ID": "my-client",
            }
        )
    )
    commands = demo.fake_commands(settings)
    assert commands["demo target"][1:] == [
        "-m",
        "connectors.fakes.http",
        "--host",
        "127.0.0.1",
        "--port",
        "9100",
    ]
    hubspot = commands["fake hubspot"]
    assert hubspot[1:3] == ["-m", "connectors.fakes.hubspot"]
    options = dict(zip(hubspot[3::2], hubspot[4::2], strict=True))
    assert options == {
        "--host": "127.0.0.1",
        "--port": "9101",
        "--client-id": "my-client",
        "--client-secret": demo.DEMO_SECRETS["HUBSPOT_CLIENT_SECRET"],
        "--refresh-token": demo.DEMO_SECRETS["HUBSPOT_REFRESH_TOKEN"],
    }


def test_a_configuration_given_by_crmhub_config_or_in_the_directory_is_used_as_it_is(
    here: Path,
) -> None:
    given = here / "mine.yaml"
    given.write_text("sources: {}\n")
    settings = demo.prepare(Settings.from_env({"CRMHUB_CONFIG": str(given)}))
    assert settings.config_path == given
    (here / "crmhub.yaml").write_text("sources: {}\n")
    assert demo.prepare(Settings.from_env({})).config_path == here / "crmhub.yaml"
    assert not (here / "var").exists()  # nothing of the demo's written


def test_secrets_in_the_environment_win_over_the_demos(here: Path) -> None:
    settings = demo.prepare(
        Settings.from_env({"STRIPE_WEBHOOK_SECRET": "whsec_mine", "FORMS_WEBHOOK_SECRET": ""})
    )
    assert settings.environ["STRIPE_WEBHOOK_SECRET"] == "whsec_mine"
    assert settings.environ["FORMS_WEBHOOK_SECRET"] == demo.DEMO_SECRETS["FORMS_WEBHOOK_SECRET"]


def test_the_example_configuration_is_the_demos_at_the_default_ports() -> None:
    """examples/crmhub.yaml teaches what the demo runs: the two must not drift apart."""
    assert (ROOT / "examples" / "crmhub.yaml").read_text() == demo.config_text(Settings())


@pytest.mark.parametrize("name", ["CRMHUB_DEMO_PORT", "CRMHUB_DEMO_HUBSPOT_PORT"])
@pytest.mark.parametrize(
    "value, says",
    [
        ("abc", "expected an integer, got 'abc'"),
        ("0", "expected a positive integer, got 0"),
        ("70000", "expected a TCP port (1-65535), got 70000"),
    ],
)
def test_a_demo_port_that_is_no_port_is_a_configuration_error_naming_it(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    [problem] = info.value.problems
    assert (problem.key, problem.message) == (name, says)


def test_two_parts_on_one_port_are_refused_by_name() -> None:
    settings = Settings.from_env({"CRMHUB_DEMO_PORT": "8000"})
    assert demo.port_clash(settings, 8000) == (
        "the receiver (--port / CRMHUB_PORT) and the demo CRM (CRMHUB_DEMO_PORT) are both set "
        "to port 8000; give each its own"
    )
    assert demo.port_clash(Settings(), 8000) is None


def test_the_env_file_gives_a_second_shell_what_it_needs_and_only_its_owner_reads_it(
    here: Path,
) -> None:
    settings = demo.prepare(Settings.from_env({"CRMHUB_KEY_PREFIX": "demo one"}))
    path = demo.write_env_file(settings, "127.0.0.1", 8123)
    assert path == here / "var" / "demo" / "env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(
        ["sh", "-c", f". '{path}' && env"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout
    exported = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert exported["CRMHUB_CONFIG"] == str(here / "var" / "demo" / "crmhub.yaml")
    assert exported["CRMHUB_VAR_DIR"] == str(here / "var")
    assert (exported["CRMHUB_HOST"], exported["CRMHUB_PORT"]) == ("127.0.0.1", "8123")
    assert exported["CRMHUB_KEY_PREFIX"] == "demo one"
    assert exported["STRIPE_WEBHOOK_SECRET"] == demo.DEMO_SECRETS["STRIPE_WEBHOOK_SECRET"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_env_prints_the_running_demos_environment(tmp_path: Path) -> None:
    """`eval "$(make -s env)"` in the quickstart: the file `crmhub serve --demo` wrote."""
    run = {"PATH": os.environ["PATH"], "CRMHUB_VAR_DIR": str(tmp_path / "var")}
    make = ["make", "-s", "-C", str(ROOT), "env"]
    missing = subprocess.run(make, env=run, capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0
    assert "no demo environment yet; start the demo with 'make run'" in missing.stderr
    settings = demo.prepare(Settings.from_env({"CRMHUB_VAR_DIR": str(tmp_path / "var")}))
    path = demo.write_env_file(settings, "127.0.0.1", 8000)
    shown = subprocess.run(make, env=run, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout == path.read_text()
