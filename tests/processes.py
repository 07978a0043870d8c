"""Real processes for integration and end-to-end tests: `crmhub serve`, the fakes, a
redis-server of a test's own.

Everything listens on 127.0.0.1 only, on free ports, and is stopped (and checked to have
stopped) by the fixture that started it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import redis
from ports import free_port

from connectors.fakes import FAKE_MODULES
from core.embedded_redis import find_redis_server

ROOT = Path(__file__).resolve().parent.parent
CRMHUB = str(Path(sys.executable).parent / "crmhub")


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


class PrivateRedis:
    """A throwaway redis-server on a fixed port that can be stopped (or killed) and started
    again on that port, for tests that take Redis away; never the shared one.

    `appendonly`: keep the data across a restart, with the ledger's own durability settings
    (AOF, fsync every second, noeviction); a clean stop loses nothing.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                find_redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *durability,
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                # after a restart the AOF is replayed first (LOADING until done)
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis writes out its AOF before it exits."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: the host losing power, as far as the hub can tell."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def fake_command(connector: str, *args: str) -> list[str]:
    """The command line running the fake of `connector` (connectors/fakes/) on a free port."""
    return [sys.executable, "-m", FAKE_MODULES[connector], "--port", "0", *args]


class FakeServer:
    """A connector's fake (connectors/fakes/) as a subprocess on a free port (it prints its
    URL)."""

    connector = ""
    #: how the fake's /_control/records names an object (its rows carry it as `_<param>`)
    object_param = "object"

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            fake_command(self.connector, *args),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://[\d.]+:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the {self.connector} fake did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def records(self, obj: str | None = None) -> list[dict]:
        params = {self.object_param: obj} if obj else {}
        rows = self.http.get("/_control/records", params=params).json()["records"]
        tag = f"_{self.object_param}"
        return [{k: v for k, v in r.items() if k != tag} for r in rows]

    def add(self, obj: str, **values: object) -> str:
        """A record as a user makes it (or edits it, with its id) in the CRM's own UI."""
        response = self.http.post("/_control/records", json={self.object_param: obj, **values})
        response.raise_for_status()
        answer = response.json()
        return str(answer.get("id") or answer.get("Id"))  # QuickBooks' own records say `Id`

    def violations(self) -> list[dict]:
        """Requests the vendor would refuse for their shape (the fakes that check them)."""
        return list(self.http.get("/_control/violations").json()["violations"])

    def limits(self, **values: int) -> dict:
        return dict(self.http.post("/_control/limits", json=values).json())

    def stats(self) -> dict:
        return dict(self.http.get("/_control/stats").json())

    def log(self) -> list[dict]:
        return list(self.http.get("/_control/log").json()["entries"])

    def fault(self, **spec: object) -> None:
        self.http.post("/_control/faults", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_control/faults").raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class DemoTarget(FakeServer):
    """connectors/fakes/http.py: a generic REST CRM."""

    connector = "http"


class FakeHubSpot(FakeServer):
    """connectors/fakes/hubspot/: HubSpot's CRM objects and OAuth APIs, checked against the
    official request schemas (violations are recorded, and tests assert there are none)."""

    connector = "hubspot"


class FakeSalesforce(FakeServer):
    """connectors/fakes/salesforce/: Salesforce's REST API and OAuth, every write checked
    against describe-like schemas (requests Salesforce would refuse for their shape are
    recorded as violations)."""

    connector = "salesforce"


class FakePipedrive(FakeServer):
    """connectors/fakes/pipedrive/: Pipedrive's API v2 and OAuth, every request checked
    against the official OpenAPI document (refused requests are recorded as violations)."""

    connector = "pipedrive"


class FakeZoho(FakeServer):
    """connectors/fakes/zoho/: Zoho CRM's accounts server and CRM API v8, every request
    checked against Zoho's official OpenAPI documents (violations recorded)."""

    connector = "zoho"
    object_param = "module"


class FakeDynamics(FakeServer):
    """connectors/fakes/dynamics/: Dataverse's Web API and Entra ID's token endpoint, every
    write checked against a CSDL-like description (requests Dataverse would refuse for their
    shape are recorded as violations)."""

    connector = "dynamics"
    object_param = "entity_set"


class Hub:
    """`crmhub serve` as a subprocess (gunicorn + Celery worker + beat) on a free port."""

    def __init__(self, env: Mapping[str, str], cwd: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "CRMHUB_PORT": str(self.port), "CRMHUB_HOST": "127.0.0.1"}
        self.cwd = cwd
        self.log_path = cwd / f"serve-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [CRMHUB, "serve", *args],
            env=self.env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        try:
            wait_until(self._ready, timeout=60, message=f"crmhub serve on {self.url}/readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"crmhub serve did not become ready:\n{self.output()}") from None

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"crmhub serve exited early:\n{self.output()}")
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CRMHUB, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"crmhub {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def stop(self, timeout: float = 90) -> int:
        """Ctrl-C, as an operator would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(
                    f"crmhub serve did not stop on Ctrl-C:\n{self.output()}"
                ) from None
        self._log.close()
        return self.process.returncode


def procfile() -> dict[str, str]:
    """The Procfile's process types and their command lines."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def sourced(env_file: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a shell has after `. env_file` (as a user does with var/demo/env)."""
    shown = subprocess.run(
        ["sh", "-c", '. "$1" && env -0', "sh", str(env_file)],
        env=dict(env or {"PATH": os.environ["PATH"]}),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)


class Part:
    """One part of the hub as its own process, started with the Procfile's own command line
    (web, worker, beat) by a shell, as honcho or Heroku would: the path production runs.

    `bin_dir`: where `gunicorn` and `celery` come from (this interpreter's environment unless
    told otherwise, such as a virtual environment the wheel was installed into)."""

    def __init__(
        self, name: str, env: Mapping[str, str], cwd: Path, bin_dir: Path | None = None
    ) -> None:
        self.name = name
        bin_path = str(bin_dir or Path(sys.executable).parent)
        self.env = {**env, "PATH": f"{bin_path}:{env.get('PATH', '/usr/bin:/bin')}"}
        if "CRMHUB_PORT" in self.env:
            self.env.setdefault("PORT", self.env["CRMHUB_PORT"])  # the Procfile binds $PORT
        self.env.setdefault("CRMHUB_HOST", "127.0.0.1")  # loopback only, in tests
        self.cwd = cwd
        self.log_path = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile()[self.name]}"],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group: a host losing power, as far as Redis can tell."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class AlertSink:
    """An on-call endpoint on loopback (webhook, Slack, PagerDuty's events URL: one per path):
    records every alert the hub POSTs to it. `down`: answer 503 (a sink that is down)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.requests: list[tuple[str, dict]] = []  # (path, body) of every accepted POST
        self.refused = 0
        self.down = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if sink.down:
                    sink.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                sink.received.append(body)
                sink.requests.append((self.path, body))
                self.send_response(202 if self.path.endswith("/pagerduty") else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paused(self) -> list[dict]:
        return [a for a in self.received if a.get("kind") == "connection_paused"]

    def at(self, path: str) -> list[dict]:
        return [body for p, body in self.requests if p == path]

    def stop(self) -> None:
        self.server.shutdown()


class SentryCollector:
    """Sentry's envelope endpoint (POST /api/<project>/envelope/) on loopback, as a
    self-hosted Sentry would receive what the SDK sends: keeps every event item."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                # an envelope: a header line, then (item header, item payload) line pairs
                lines = raw.decode().splitlines()
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    if json.loads(header).get("type") == "event":
                        collector.items.append(json.loads(payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_address[1]}/42"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def start_fake(
    connector: str,
    banner: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> tuple[subprocess.Popen[str], str]:
    """Start the fake of `connector` on a free port; its first line must be
    `<banner> http://...`. Returns the process and its base URL (fails the test if it does not
    start in time)."""
    import selectors

    import pytest

    proc = subprocess.Popen(
        fake_command(connector, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(timeout=timeout):
            line = proc.stdout.readline().strip()
    if not line.startswith(f"{banner} http://127.0.0.1:"):
        stop_fake(proc)
        pytest.fail(f"the {connector} fake did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"


def stop_fake(proc: subprocess.Popen[str]) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode
