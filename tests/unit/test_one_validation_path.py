"""One validation path (connectors/validation.py): `crmhub config check` and every process
that runs the hub (`crmhub serve`, `crmhub reload`, gunicorn's master and each receiver
process, the Celery worker and its processes, beat) refuse the same configuration with the
same problems, at start and on a reload. Redis is fakeredis; nothing is started."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import fakeredis
import pytest
from conftest import crmhub, make_settings, text
from hubtest import CRM_CONFIG, CRM_ENV, STRIPE_SECRET, signed, stripe_event

from app import create_app
from core.errors import ConfigError
from core.ledger.keys import LedgerKeys

ROOT = Path(__file__).resolve().parents[2]
WriteConfig = Callable[..., Path]  # the conftest fixture

GOOD = CRM_CONFIG
#: what the worker refused and `config check` used to accept (an unknown connector), and a
#: secret this host lacks: neither is a shape problem
BAD = GOOD.replace("connector: http", "connector: htp").replace("CRM_TOKEN", "CRM_TOKN")


class Install:
    """A hub's configuration file and environment, its Redis a fakeredis."""

    def __init__(
        self, write_config: WriteConfig, key_prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.path = write_config(GOOD)
        self.prefix = key_prefix
        self.settings = make_settings(self.path, key_prefix, redis_url="redis://unused", **CRM_ENV)
        self.redis = fakeredis.FakeRedis()
        for name, value in self.settings.environ.items():  # for what reads os.environ
            monkeypatch.setenv(name, value)
        monkeypatch.setattr("core.redis_client.connect", lambda url: self.redis)

    def break_it(self) -> None:
        self.path.write_text(BAD)

    def cli(self, *args: str) -> list[str]:
        """The problems a `crmhub` command prints (stdout or stderr), having exited 2."""
        result = crmhub(self.settings, *args)
        assert result.exit_code == 2, result.output
        return [
            line.removeprefix("crmhub: ")
            for line in result.output.splitlines()
            if line.startswith((str(self.path), f"crmhub: {self.path}"))
        ]


@pytest.fixture
def install(
    write_config: WriteConfig, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Install]:
    from workers import runtime_holder

    runtime_holder.reset()
    yield Install(write_config, key_prefix, monkeypatch)
    runtime_holder.reset()


@pytest.fixture
def celery_settings(install: Install) -> Iterator[None]:
    """workers.celery_app's settings (read once, at import) are the install's."""
    from workers.celery_app import app

    previous, app.conf.crmhub_settings = app.conf.crmhub_settings, install.settings
    try:
        yield
    finally:
        app.conf.crmhub_settings = previous


def refused_at_start(
    start: Callable[[], object], kind: str, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """The problems a process start prints on stderr before exiting 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        start()
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"crmhub {kind}: 2 problem(s) in the configuration; not starting")
    return [line.removeprefix(f"crmhub {kind}: ") for line in lines[:-1]]


def gunicorn_master_start() -> None:
    from app import gunicorn_conf

    gunicorn_conf.on_starting(SimpleNamespace(cfg=SimpleNamespace(address=[])))


def worker_start() -> None:
    from celery.signals import celeryd_init

    celeryd_init.send(sender=None)


def beat_start() -> None:
    from celery.signals import beat_init

    beat_init.send(sender=None)


def test_config_check_and_every_process_accept_and_refuse_the_same_configurations(
    install: Install, celery_settings: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from workers import runtime_holder

    result = crmhub(install.settings, "config", "check")
    assert result.exit_code == 0, result.output
    gunicorn_master_start()
    worker_start()
    beat_start()
    create_app(install.settings, redis_client=install.redis)
    assert set(runtime_holder.get().config.connections) == {"crm"}
    runtime_holder.reset()

    install.break_it()
    checked = install.cli("config", "check")
    assert len(checked) == 2
    assert any("connections.crm.connector: unknown connector 'htp'" in p for p in checked)
    assert any("environment variable CRM_TOKN is not set" in p for p in checked)

    assert install.cli("serve") == checked
    assert install.cli("reload") == checked
    with pytest.raises(ConfigError) as web:  # each receiver process (app.wsgi)
        create_app(install.settings, redis_client=install.redis)
    assert [str(p) for p in web.value.problems] == checked
    with pytest.raises(ConfigError) as worker:  # each of the worker's pool processes
        runtime_holder.get()
    assert [str(p) for p in worker.value.problems] == checked
    assert refused_at_start(gunicorn_master_start, "web", capsys) == checked
    assert refused_at_start(worker_start, "worker", capsys) == checked
    assert refused_at_start(beat_start, "beat", capsys) == checked


def test_a_running_receiver_and_worker_refuse_a_reload_with_the_same_problems(
    install: Install,
) -> None:
    """The file changed again after `crmhub reload` checked it: each process checks it the
    same way, refuses it and keeps running on what it has."""
    from workers import runtime_holder

    web = create_app(install.settings, redis_client=install.redis).test_client()
    runtime = runtime_holder.get()
    install.break_it()
    checked = install.cli("config", "check")
    install.redis.incr(LedgerKeys(install.prefix).config_generation())
    time.sleep(1.1)  # each process looks at most once a second
    body, headers = signed("stripe", stripe_event("evt_1"), STRIPE_SECRET)
    assert web.post("/webhooks/stripe", data=body, headers=headers).status_code == 202
    assert runtime_holder.get() is runtime
    refused = {
        text(process).partition("@")[0]: json.loads(entry)["problems"]
        for process, entry in install.redis.hgetall(f"{install.prefix}:config:refused").items()
    }
    assert refused == {"web": checked, "worker": checked}


def load_config_callers() -> set[str]:
    """The modules of app, workers and connectors that call core.config.load_config."""
    callers = set()
    for package in ("app", "workers", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            if any(
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "load_config"
                for node in ast.walk(tree)
            ):
                callers.add(str(path.relative_to(ROOT)))
    return callers


def test_what_runs_the_hub_loads_the_configuration_only_through_the_one_path() -> None:
    # app/cli/common.py: operator commands (dlq, events, mappings) read names and mappings
    # only, and work on a host without the hub's secrets
    assert load_config_callers() == {"connectors/validation.py", "app/cli/common.py"}
