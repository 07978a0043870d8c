"""End to end: `crmhub serve` as a subprocess, signed webhooks over HTTP, the CLI reading back.

Once against the real Redis (CRMHUB_REDIS_URL) and once with it unset (the embedded
redis-server `crmhub serve` starts under ./var/redis, found again by the CLI and after a
restart, and restarted by the supervisor when it dies).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from conftest import ROOT, delete_prefix
from hubtest import DEMO_CRM_CONFIG, STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import CRMHUB, DemoTarget, Hub, sourced, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("serve")]


@pytest.fixture
def target() -> Iterator[DemoTarget]:
    server = DemoTarget()
    yield server
    server.stop()


def hub_env(tmp_path: Path, target: DemoTarget, **extra: str) -> dict[str, str]:
    config = tmp_path / "crmhub.yaml"
    config.write_text(DEMO_CRM_CONFIG.format(target=target.url))
    return {
        "CRMHUB_CONFIG": str(config),
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "CRMHUB_WORKER_CONCURRENCY": "2",
        **extra,
    }


def send(hub: Hub, event: dict) -> httpx.Response:
    body, headers = signed("stripe", event, STRIPE_SECRET)
    return hub.http.post("/webhooks/stripe", content=body, headers=headers)


def exercise_contract(hub: Hub, target: DemoTarget) -> list[str]:
    """The receiver's whole external contract over real HTTP; returns accepted event ids."""
    accepted = []
    for i in range(10):
        response = send(hub, stripe_event(f"evt_e2e_{i}", email=f"  Person{i}@Example.COM "))
        assert response.status_code == 202, response.text
        assert response.json()["deliveries"] == 1
        accepted.append(response.json()["event_id"])
    repeat = send(hub, stripe_event("evt_e2e_3", email="person3@example.com"))
    assert repeat.status_code == 200
    assert repeat.json() == {"event_id": accepted[3], "duplicate": True}

    body, headers = signed("stripe", stripe_event("evt_forged"), "whsec_not_ours")
    forged = hub.http.post("/webhooks/stripe", content=body, headers=headers)
    assert forged.status_code == 401 and forged.json()["reason"] == "invalid"
    body, headers = signed("stripe", b"{not json", STRIPE_SECRET)
    assert hub.http.post("/webhooks/stripe", content=body, headers=headers).status_code == 400
    assert hub.http.post("/webhooks/nope", content=b"{}").status_code == 404
    big, headers = signed("stripe", b'{"pad": "' + b"x" * 5000 + b'"}', STRIPE_SECRET)
    assert hub.http.post("/webhooks/stripe", content=big, headers=headers).status_code == 413
    chunked = hub.http.post(
        "/webhooks/stripe", content=iter([big[:3000], big[3000:]]), headers=headers
    )
    assert chunked.status_code == 413
    assert hub.http.get("/healthz").status_code == 200

    # the worker delivers every accepted event, one record per normalised email
    wait_until(
        lambda: len(target.records("contacts")) == 10,
        timeout=60,
        message="10 contacts at the target",
    )
    assert sorted(r["key"] for r in target.records("contacts")) == sorted(
        f"person{i}@example.com" for i in range(10)
    )
    return accepted


def check_events_show(hub: Hub, event_id: str) -> None:
    wait_until(
        lambda: (
            json.loads(hub.cli("events", "show", event_id, "--json").stdout)["deliveries"][0][
                "state"
            ]
            == "delivered"
        ),
        timeout=30,
        message="delivery state delivered",
    )
    shown = json.loads(hub.cli("events", "show", event_id, "--json").stdout)
    assert shown["id"] == event_id
    assert shown["source"] == "stripe" and shown["type"] == "customer.created"
    assert shown["external_id"].startswith("evt_e2e_")
    assert shown["received_at"].endswith("Z")
    assert shown["state"] == "recorded"
    assert shown["headers"]["Stripe-Signature"] == "[redacted]"
    assert STRIPE_SECRET not in json.dumps(shown)
    assert shown["body"]["data"]["object"]["name"] == "Ada Lovelace"
    (delivery,) = shown["deliveries"]
    assert {"id", "mapping", "connection", "state", "attempts"} <= set(delivery)
    assert (delivery["mapping"], delivery["connection"], delivery["attempts"]) == (
        "customers",
        "crm",
        1,
    )
    missing = hub.cli("events", "show", "evt_nope", "--json", check=False)
    assert missing.returncode != 0 and "no event" in missing.stderr


def test_serve_against_the_real_redis(
    tmp_path: Path, target: DemoTarget, real_redis_url: str
) -> None:
    prefix = f"crmhub-e2e-{uuid.uuid4().hex[:10]}"
    env = hub_env(tmp_path, target, CRMHUB_REDIS_URL=real_redis_url, CRMHUB_KEY_PREFIX=prefix)
    hub = Hub(env, tmp_path)
    try:
        assert "(from CRMHUB_REDIS_URL)" in hub.output()
        accepted = exercise_contract(hub, target)
        check_events_show(hub, accepted[0])
        status = json.loads(hub.cli("status", "--json").stdout)
        (crm,) = status["connections"]
        assert crm["counts"]["delivered"] == 10 and crm["paused"] is False
    finally:
        code = hub.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)
    assert code == 0, hub.output()
    assert "crmhub stopped." in hub.output()


def test_serve_with_the_embedded_redis_survives_a_restart(
    tmp_path: Path, target: DemoTarget
) -> None:
    env = hub_env(tmp_path, target)
    env.pop("CRMHUB_REDIS_URL", None)
    hub = Hub({**env, "CRMHUB_REDIS_URL": ""}, tmp_path)
    try:
        assert "redis: embedded redis-server" in hub.output()
        address = json.loads((tmp_path / "var" / "redis" / "address.json").read_text())
        assert address["url"].startswith("redis://127.0.0.1:")
        accepted = exercise_contract(hub, target)
        check_events_show(hub, accepted[0])  # the CLI finds the embedded Redis itself
    finally:
        assert hub.stop() == 0, hub.output()
    assert not (tmp_path / "var" / "redis" / "address.json").exists()
    assert list((tmp_path / "var" / "redis").glob("ledger.aof*")), "AOF must be on"
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(address["url"], socket_connect_timeout=0.5).ping()

    # durable: a new `crmhub serve` replays the AOF and still knows every event
    again = Hub({**env, "CRMHUB_REDIS_URL": ""}, tmp_path)
    try:
        shown = json.loads(again.cli("events", "show", accepted[5], "--json").stdout)
        assert shown["deliveries"][0]["state"] == "delivered"
        assert send(again, stripe_event("evt_e2e_5")).json()["duplicate"] is True
    finally:
        assert again.stop() == 0, again.output()


def test_the_demo_survives_ctrl_c_and_make_run_again(tmp_path: Path) -> None:
    """`make run`, Ctrl-C, `make run` again in the same directory: the embedded Redis keeps
    the cached HubSpot access token while the fake HubSpot restarts knowing none, and answers
    it with 401 INVALID_AUTHENTICATION. One refresh and one retry deliver; nothing pauses.
    The demo brings its own configuration, on the ports the demo port settings name."""
    target_port, hubspot_port = free_port(), free_port()
    env = {
        "CRMHUB_CONFIG": "",
        "CRMHUB_REDIS_URL": "",
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "CRMHUB_WORKER_CONCURRENCY": "1",
        "CRMHUB_DEMO_PORT": str(target_port),
        "CRMHUB_DEMO_HUBSPOT_PORT": str(hubspot_port),
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    }
    fake_hubspot = httpx.Client(base_url=f"http://127.0.0.1:{hubspot_port}", timeout=10)

    def delivered(hub: Hub, event_id: str) -> None:
        def done() -> bool:
            [delivery] = json.loads(hub.cli("events", "show", event_id, "--json").stdout)[
                "deliveries"
            ]
            assert delivery["state"] not in ("held", "dead"), delivery
            return bool(delivery["state"] == "delivered")

        wait_until(done, timeout=30, message=f"{event_id} delivered to HubSpot")

    def contacts() -> list[str]:
        records = fake_hubspot.get("/_control/records", params={"object": "contacts"}).json()
        return sorted(r["properties"]["email"] for r in records["records"])

    hub = Hub(env, tmp_path, "--demo")
    try:
        assert f"config: {tmp_path / 'var' / 'demo' / 'crmhub.yaml'} " in hub.output()
        delivered(
            hub, send(hub, stripe_event("evt_before", email="ada@example.com")).json()["event_id"]
        )
        first_token = sourced(tmp_path / "var" / "demo" / "env")["CRMHUB_OPERATOR_TOKEN"]
    finally:
        assert hub.stop() == 0, hub.output()

    again = Hub(env, tmp_path, "--demo")
    try:
        assert contacts() == []  # a new fake HubSpot, knowing nothing
        delivered(
            again,
            send(again, stripe_event("evt_after", email="grace@example.com")).json()["event_id"],
        )
        assert contacts() == ["grace@example.com"]
        assert fake_hubspot.get("/_control/stats").json()["token_refreshes"] == 1
        again.env.update(sourced(tmp_path / "var" / "demo" / "env"))  # a second shell
        status = json.loads(again.cli("status", "--json").stdout)
        [hubspot] = [c for c in status["connections"] if c["name"] == "hubspot"]
        assert hubspot["paused"] is False
        # the operator API and dashboard are on, with the token the env file holds (the same
        # both runs: a browser stays signed in)
        token = again.env["CRMHUB_OPERATOR_TOKEN"]
        assert token and token == first_token and "/ui/ (sign in with" in again.output()
        answer = again.http.get("/api/v1/connections", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert again.http.get("/api/v1/connections").status_code == 401
    finally:
        assert again.stop() == 0, again.output()
        fake_hubspot.close()


UNSIGNED = """
sources:
  forms: {verify: {scheme: none}, allow_unsigned: true}
connections: {}
mappings: {}
"""


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on, with SO_REUSEPORT as our own workers do: a bind that
    shared ports would succeed, so only the explicit check can refuse it."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_serve_refuses_a_busy_port_before_starting_anything(tmp_path: Path, busy_port: int) -> None:
    (tmp_path / "crmhub.yaml").write_text(UNSIGNED)
    done = subprocess.run(
        [CRMHUB, "serve", "--port", str(busy_port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, CRMHUB_CONFIG=str(tmp_path / "crmhub.yaml"), CRMHUB_REDIS_URL=""),
    )
    assert done.returncode == 3  # EXIT_UNAVAILABLE
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in done.stderr
    assert "choose another port with --port / CRMHUB_PORT" in done.stderr
    assert not (tmp_path / "var").exists()  # no embedded Redis was started


@pytest.mark.parametrize(
    "setting, part",
    [("CRMHUB_DEMO_PORT", "the demo CRM"), ("CRMHUB_DEMO_HUBSPOT_PORT", "the fake HubSpot")],
)
def test_serve_demo_refuses_a_busy_demo_port_before_starting_anything(
    tmp_path: Path, busy_port: int, setting: str, part: str
) -> None:
    """Before: the fake died on start with a traceback, again at each restart, until the
    supervisor gave up on the whole hub."""
    done = subprocess.run(
        [CRMHUB, "serve", "--demo", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, CRMHUB_CONFIG="", CRMHUB_REDIS_URL="", **{setting: str(busy_port)}),
    )
    assert done.returncode == 3, done.stdout + done.stderr  # EXIT_UNAVAILABLE
    assert done.stderr.splitlines() == [
        f"crmhub: {part}: cannot listen on 127.0.0.1:{busy_port}: Address already in use (is "
        f"another server running there? choose another port with {setting})"
    ]
    assert not (tmp_path / "var").exists()  # nothing was started or written


def test_gunicorn_alone_refuses_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    """The Procfile's `web` runs gunicorn directly: its start makes the same check."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "app" / "gunicorn_conf.py"),
            "app.wsgi:app",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(
            os.environ,
            CRMHUB_HOST="127.0.0.1",
            CRMHUB_PORT=str(busy_port),
            CRMHUB_CONFIG=str(tmp_path / "absent.yaml"),
        ),
    )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in done.stderr
    assert "choose another port" in done.stderr


def _aof_holds(directory: Path, needle: bytes) -> bool:
    return any(needle in f.read_bytes() for f in directory.rglob("ledger.aof*") if f.is_file())


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone: reaped
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_serve_restarts_a_killed_embedded_redis_on_its_port_with_its_data(
    tmp_path: Path, target: DemoTarget
) -> None:
    """Before: a killed embedded redis-server stayed dead (a zombie), and with it the hub."""
    env = hub_env(tmp_path, target)
    hub = Hub({**env, "CRMHUB_REDIS_URL": ""}, tmp_path)
    redis_dir = tmp_path / "var" / "redis"
    try:
        before = send(hub, stripe_event("evt_before_the_crash", email="before@example.com"))
        assert before.status_code == 202, before.text
        # fsync every second: wait until the event is on disk, which is what the AOF promises
        wait_until(
            lambda: _aof_holds(redis_dir, b"evt_before_the_crash"),
            timeout=10,
            message="the event in the AOF",
        )
        address = json.loads((redis_dir / "address.json").read_text())
        os.kill(address["pid"], signal.SIGKILL)

        def restarted() -> bool:
            now = json.loads((redis_dir / "address.json").read_text())
            return bool(now["pid"] != address["pid"])

        wait_until(restarted, timeout=15, message="the embedded redis restarted")
        assert json.loads((redis_dir / "address.json").read_text())["url"] == address["url"]
        assert not _zombie(address["pid"])
        assert "embedded redis exited (killed by SIGKILL); restarting it" in hub.output()

        # the receiver takes webhooks again within a few seconds, on its own
        wait_until(
            lambda: (
                send(
                    hub, stripe_event("evt_after_the_crash", email="after@example.com")
                ).status_code
                in (200, 202)
            ),
            timeout=10,
            interval=0.25,
            message="a webhook accepted after the restart",
        )
        shown = json.loads(hub.cli("events", "show", before.json()["event_id"], "--json").stdout)
        assert shown["external_id"] == "evt_before_the_crash"  # kept by the AOF
        # and the worker delivers again: its broker connection comes back within a second of
        # Redis (workers/broker.py), and the sweeper republishes what it missed
        try:
            wait_until(
                lambda: "after@example.com" in {r["key"] for r in target.records("contacts")},
                timeout=90,
                message="the new event delivered",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the hub said:\n{hub.output()[-4000:]}") from None
        # the same worker: losing its broker with a task unacknowledged no longer made it exit
        # (kombu's AttributeError, Celery's "Unrecoverable error": workers/broker.py)
        assert "worker exited" not in hub.output(), hub.output()[-4000:]
    finally:
        assert hub.stop() == 0, hub.output()


BROKEN_NAME = "name: {from: data.object.full_name, required: true}"  # the events say `name`


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_crmhub_reload_makes_the_running_hub_use_a_fixed_mapping(
    tmp_path: Path, target: DemoTarget, real_redis_url: str
) -> None:
    """Before: a fixed mapping was used only after restarting the workers, which `crmhub
    serve` offered no way to do; now: fix, check, reload, replay, with no process restarted."""
    prefix = f"crmhub-e2e-{uuid.uuid4().hex[:10]}"
    env = hub_env(tmp_path, target, CRMHUB_REDIS_URL=real_redis_url, CRMHUB_KEY_PREFIX=prefix)
    config = Path(env["CRMHUB_CONFIG"])
    good = config.read_text()
    config.write_text(good.replace("name: data.object.name", BROKEN_NAME))
    hub = Hub(env, tmp_path)
    try:
        processes = _children(hub.process.pid)
        assert send(hub, stripe_event("evt_r1", email="ada@example.com")).status_code == 202

        def dead() -> list[dict]:
            return list(json.loads(hub.cli("dlq", "list", "--json").stdout)["dead_letters"])

        wait_until(lambda: len(dead()) == 1, timeout=30, message="the dead letter")
        assert dead()[0]["category"] == "mapping"

        # a configuration that does not validate is refused; the running one is kept
        config.write_text(good.replace("object: contacts", "object: contacts\n    acton: x"))
        refused = hub.cli("reload", check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "mappings.customers.acton: unknown key; did you mean 'action'?" in refused.stdout
        assert "nothing reloaded" in refused.stdout

        # fix, check, reload, replay
        config.write_text(good)
        hub.cli("config", "check")
        reloaded = hub.cli("reload")
        assert "reloaded as generation 1" in reloaded.stdout
        replayed = json.loads(hub.cli("dlq", "replay", "--all", "--wait", "20", "--json").stdout)
        assert replayed["outcome"]["counts"]["delivered"] == 1, replayed
        assert {r["key"]: r["fields"]["name"] for r in target.records("contacts")} == {
            "ada@example.com": "Ada Lovelace"
        }

        # SIGHUP to `crmhub serve` does the same as `crmhub reload`
        config.write_text(good.replace("name: data.object.name", "name: {const: Grace}"))
        hub.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: "announced configuration generation 2" in hub.output(),
            timeout=10,
            message="the reload announced",
        )
        time.sleep(1.2)  # what `crmhub reload` waits: one check interval
        assert send(hub, stripe_event("evt_r2", email="bob@example.com")).status_code == 202
        wait_until(
            lambda: any(r["fields"].get("name") == "Grace" for r in target.records("contacts")),
            timeout=30,
            message="the next delivery on the SIGHUP'd configuration",
        )
        assert _children(hub.process.pid) == processes  # nothing was restarted
        assert "restarting it" not in hub.output()
    finally:
        code = hub.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)
    assert code == 0, hub.output()
