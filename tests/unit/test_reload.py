"""Configuration reload without restarts (core/reload.py): `crmhub reload` checks, then
announces a generation in Redis; receiver and worker processes load it before their next
request or task; SIGHUP to the supervisor, gunicorn's master, the worker and the beat does
the same as `crmhub reload`. Ledger on fakeredis, the target behind httpx.MockTransport."""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import httpx
import pytest
from click.testing import Result
from conftest import crmhub, hub_ledger, make_settings, text
from hubtest import STRIPE_SECRET, accept_webhook, signed, stripe_event

from app import create_app
from connectors.http import HttpConnector
from core.config import Config, load_config
from core.errors import ConfigError, ConfigProblem
from core.ledger.generations import ConfigGenerations
from core.ledger.keys import LedgerKeys
from core.reload import Reloadable
from core.settings import Settings
from workers.delivery import run_delivery
from workers.runtime import WorkerRuntime

WriteConfig = Callable[..., Path]  # the conftest fixture

CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
connections:
  crm: {connector: http, base_url: "https://crm.example.com/api"}
mappings:
  customers:
    source: stripe
    when: {event_type: customer.created}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: data.object.email
      name: {from: data.object.full_name, required: true}
"""
FIXED = CONFIG.replace("{from: data.object.full_name, required: true}", "data.object.name")
INVALID = CONFIG.replace("    object: contacts\n", "    object: contacts\n    acton: upsert\n")
ENV = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET}


class Hub:
    """One hub's configuration file, settings and Redis, and `crmhub` run against them."""

    def __init__(self, write_config: WriteConfig, key_prefix: str) -> None:
        self.path = write_config(CONFIG)
        self.settings = make_settings(self.path, key_prefix, redis_url="redis://unused", **ENV)
        self.redis = fakeredis.FakeRedis()
        self.ledger = hub_ledger(self.settings, self.redis)
        self.prefix = key_prefix

    def write(self, text: str) -> None:
        self.path.write_text(text)

    def cli(self, *args: str) -> Result:
        return crmhub(self.settings, *args, ledger=self.ledger)

    def generation(self) -> int:
        return int(self.redis.get(self.generation_key) or 0)

    @property
    def generation_key(self) -> str:
        return f"{self.prefix}:config:generation"

    def generations(self) -> ConfigGenerations:
        return ConfigGenerations(self.redis, LedgerKeys(self.prefix))

    def config(self) -> Config:
        return load_config(self.path, self.settings.environ)


@pytest.fixture
def hub(write_config: WriteConfig, key_prefix: str) -> Hub:
    return Hub(write_config, key_prefix)


# crmhub reload ---------------------------------------------------------------------------
def test_reload_refuses_a_configuration_that_does_not_validate(hub: Hub) -> None:
    hub.write(INVALID.replace("STRIPE_WEBHOOK_SECRET", "MISSING_SECRET"))
    result = hub.cli("reload")
    assert result.exit_code == 2
    assert "mappings.customers.acton: unknown key" in result.output
    assert "MISSING_SECRET is not set" in result.output  # every problem at once
    assert "nothing reloaded: the hub keeps running on its current configuration" in result.output
    assert hub.generation() == 0  # nothing announced
    as_json = hub.cli("reload", "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["ok"] is False


def test_reload_announces_a_valid_configuration_and_returns_once_processes_use_it(hub: Hub) -> None:
    began = time.monotonic()
    result = hub.cli("reload")
    assert result.exit_code == 0, result.output
    assert "reloaded as generation 1: every receiver and worker process uses it" in result.output
    assert time.monotonic() - began >= 1.0  # one check interval: see core/reload
    assert json.loads(hub.cli("reload", "--json").stdout) == {
        "ok": True,
        "file": str(hub.path),
        "generation": 2,
        "refused": [],
    }


def test_reload_reports_a_process_that_could_not_load_it(hub: Hub) -> None:
    """A worker host that lacks a secret refuses, keeps its configuration, and says so."""

    def load() -> Config:
        raise ConfigError(
            [
                ConfigProblem(
                    str(hub.path),
                    "connections.crm.auth.token_env",
                    "environment variable CRM_TOKEN is not set",
                    9,
                )
            ]
        )

    live = Reloadable(
        "old",
        generation=0,
        generations=hub.generations(),
        kind="worker",
        load=load,
        rebuild=lambda old, config: "new",
        interval=0.05,
    )
    stop = threading.Event()

    def busy_worker() -> None:
        while not stop.is_set():
            live.current()
            time.sleep(0.02)

    threading.Thread(target=busy_worker, daemon=True).start()
    try:
        result = hub.cli("reload")
    finally:
        stop.set()
    assert result.exit_code == 1
    assert "refused it and keeps its configuration:" in result.output
    assert "CRM_TOKEN is not set" in result.output
    assert live.value == "old"


# Reloadable: when a process looks, and what it keeps --------------------------------------
def test_a_process_checks_at_most_once_per_interval_and_swaps_between_uses(hub: Hub) -> None:
    now = [100.0]
    swapped: list[tuple[Any, Any]] = []
    loads = []

    def load() -> Config:
        loads.append(1)
        return hub.config()

    live = Reloadable(
        hub.config(),
        generation=0,
        generations=hub.generations(),
        kind="web",
        load=load,
        rebuild=lambda old, config: config,
        swapped=lambda old, new: swapped.append((old, new)),
        clock=lambda: now[0],
    )
    first = live.value
    hub.write(FIXED)
    hub.redis.incr(hub.generation_key)
    now[0] += 0.5
    assert live.current() is first and not loads  # not looked yet
    now[0] += 0.6
    second = live.current()
    assert second is not first and live.generation == 1
    assert second.mappings["customers"].fields[1].from_ == ("data.object.name",)
    assert swapped == [(first, second)]
    now[0] += 5
    assert live.current() is second and len(loads) == 1  # same generation: no reload


def test_a_configuration_a_process_cannot_load_is_refused_and_the_old_one_kept(hub: Hub) -> None:
    now = [0.0]
    live = Reloadable(
        hub.config(),
        generation=0,
        generations=hub.generations(),
        kind="worker",
        load=hub.config,
        rebuild=lambda old, config: config,
        clock=lambda: now[0],
    )
    kept = live.value
    hub.write(INVALID)  # changed again after `crmhub reload` checked it
    hub.redis.incr(hub.generation_key)
    now[0] += 2
    assert live.current() is kept and live.generation == 0
    [(process, entry)] = hub.redis.hgetall(f"{hub.prefix}:config:refused").items()
    assert text(process).startswith("worker@")
    assert json.loads(entry)["generation"] == 1
    assert "acton" in json.loads(entry)["problems"][0]
    hub.write(FIXED)  # not tried again until the next announcement
    now[0] += 2
    assert live.current() is kept
    hub.redis.incr(hub.generation_key)
    now[0] += 2
    assert live.current() is not kept and live.generation == 2


# the receiver and the worker, reloaded in place ------------------------------------------
def test_the_receiver_routes_by_the_reloaded_configuration(hub: Hub) -> None:
    client = create_app(hub.settings, redis_client=hub.redis).test_client()

    def post(event_id: str) -> dict[str, Any]:
        body, headers = signed(
            "stripe", stripe_event(event_id, type_="customer.updated"), STRIPE_SECRET
        )
        response = client.post("/webhooks/stripe", data=body, headers=headers)
        assert response.status_code == 202, response.text
        return dict(response.get_json())

    assert post("evt_1")["deliveries"] == 0  # the mapping takes created only
    hub.write(
        CONFIG.replace(
            "event_type: customer.created", "event_type: [customer.created, customer.updated]"
        )
    )
    assert hub.cli("reload").exit_code == 0
    assert post("evt_2")["deliveries"] == 1
    assert client.application.extensions["crmhub"].config.mappings[
        "customers"
    ].when.event_types == ("customer.created", "customer.updated")


def test_a_worker_delivers_with_the_fixed_mapping_after_reload_and_replay(hub: Hub) -> None:
    """Fix, check, reload, replay: the replayed delivery goes out with the fixed mapping."""
    written: list[dict[str, Any]] = []

    def crm(request: httpx.Request) -> httpx.Response:
        written.append(json.loads(request.content))
        return httpx.Response(200, json={})

    factory = {"http": functools.partial(HttpConnector, transport=httpx.MockTransport(crm))}
    runtime = WorkerRuntime.build(hub.settings, client=hub.redis)
    runtime.connector_factory = factory  # type: ignore[assignment]
    live = Reloadable(
        runtime,
        generation=0,
        generations=hub.generations(),
        kind="worker",
        load=hub.config,
        rebuild=WorkerRuntime.reconfigured,
        swapped=lambda old, new: old.close(),
        interval=0.2,
    )
    [event] = accept_webhook(runtime.config, runtime.ledger, stripe_event("evt_1"))
    [delivery] = event.deliveries
    assert run_delivery(live.current(), delivery.id) == "dead"

    hub.write(FIXED)
    assert hub.cli("config", "check").exit_code == 0
    assert hub.cli("reload").exit_code == 0
    assert hub.cli("dlq", "replay", delivery.id, "--no-wait").exit_code == 0
    assert run_delivery(live.current(), delivery.id) == "delivered"
    assert written == [{"email": "ada@example.com", "name": "Ada Lovelace"}]
    live.value.close()


# SIGHUP: the same as `crmhub reload`, from each kind of process ---------------------------
@pytest.fixture
def hub_env(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The process environment of a hub process, its Redis the hub's fakeredis."""
    for name, value in hub.settings.environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("core.redis_client.connect", lambda url: hub.redis)
    yield hub


def test_sighup_to_gunicorns_master_checks_and_announces(hub_env: Hub) -> None:
    from app import gunicorn_conf

    server = SimpleNamespace()
    gunicorn_conf.when_ready(server)
    server.handle_hup()  # what gunicorn's loop calls on SIGHUP
    assert hub_env.generation() == 1
    hub_env.write(INVALID)
    server.handle_hup()
    assert hub_env.generation() == 1  # refused: nothing announced


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_sighup_to_the_worker_or_the_beat_checks_and_announces(
    hub_env: Hub, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from workers import tasks

    before = signal.getsignal(signal.SIGHUP)
    try:
        (
            tasks._reload_on_hangup_in_the_worker
            if kind == "worker"
            else tasks._reload_on_hangup_in_beat
        )()
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while hub_env.generation() != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hub_env.generation() == 1
    finally:
        signal.signal(signal.SIGHUP, before)


def test_sighup_to_crmhub_serve_checks_and_announces(
    hub_env: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.supervisor import Child, Supervisor

    serve = importlib.import_module("app.cli.serve")  # the module, not the command

    monkeypatch.setattr(serve, "connect", lambda url: hub_env.redis)
    supervisor = Supervisor(
        [Child("sleeper", ["sleep", "30"], stop_timeout=5)],
        os.environ,
        on_hangup=serve.reload_on_hangup(Settings.from_env(), "redis://x"),
    )
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGHUP)).start()
    threading.Timer(1.5, supervisor.request_stop).start()
    before = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)}
    try:
        assert supervisor.run(poll_interval=0.05) == 0
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert hub_env.generation() == 1
