"""Run the hub's processes side by side (`crmhub serve`): start, watch, restart, stop in order.

Each child runs in its own session, so a Ctrl-C reaches only the supervisor, which then stops
the children in a safe order: the receiver first (no new events), then the scheduler, then the
worker (its running tasks finish or go back to the ledger by lease), the demo target last.
Services the children need (the embedded Redis) start before them, stop after them, and are
watched and restarted like them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.embedded_redis import EmbeddedRedis

log = logging.getLogger("crmhub.serve")

#: a child that dies more often than this (within the window) is not restarted again
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if `crmhub serve` itself dies (even by SIGKILL), so no
    orphaned receiver or worker keeps running unsupervised."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "unknown status"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"code {returncode}"


class Part(Protocol):
    """What the supervisor watches: a child process, or a service such as the embedded Redis."""

    name: str
    restarts: deque[float]

    def start(self, env: Mapping[str, str]) -> None: ...

    @property
    def started(self) -> bool: ...

    @property
    def running(self) -> bool: ...  # asking reaps a dead process (no zombie)

    def exit_status(self) -> str: ...

    def stop(self) -> None: ...


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    stop_timeout: float = 20.0
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)

    def start(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            list(self.argv),
            env=dict(env),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    @property
    def started(self) -> bool:
        return self.process is not None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_status(self) -> str:
        return describe_exit(self.process.returncode if self.process else None)

    def stop(self) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, self.stop_timeout)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class EmbeddedRedisPart:
    """The embedded redis-server as a supervised part. A restart reuses its port and AOF, so
    the children, which were given its URL, reconnect to the same data by themselves."""

    redis: EmbeddedRedis
    name: str = "embedded redis"
    restarts: deque[float] = field(default_factory=deque)
    _returncode: int | None = None

    def start(self, env: Mapping[str, str]) -> None:
        if self.redis.port:
            self.redis.restart()
            log.warning("embedded redis restarted on %s (its AOF replayed)", self.redis.url)
        else:
            self.redis.start()

    @property
    def started(self) -> bool:
        return self.redis.port != 0  # it has a port: from now on, kept and restarted on it

    @property
    def running(self) -> bool:
        alive = self.redis.running
        if not alive and self.redis.process is not None:
            self._returncode = self.redis.process.returncode
        return alive

    def exit_status(self) -> str:
        return describe_exit(self._returncode)

    def stop(self) -> None:
        self.redis.stop()


class Supervisor:
    def __init__(
        self,
        children: Sequence[Part],
        env: Mapping[str, str],
        *,
        services: Sequence[Part] = (),
        on_hangup: Callable[[], object] | None = None,
    ) -> None:
        self.children = list(children)
        self.services = list(services)
        self.env = env
        self.on_hangup = on_hangup
        self._stopping = False
        self._hangup = False
        self.exit_code = 0

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        self._stopping = True

    def _request_hangup(self, signum: int = signal.SIGHUP, frame: object = None) -> None:
        self._hangup = True  # handled in the loop, not in the signal handler

    def run(self, poll_interval: float = 0.5) -> int:
        for part in [*self.services, *self.children]:
            if not part.started:
                part.start(self.env)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        if self.on_hangup is not None:
            signal.signal(signal.SIGHUP, self._request_hangup)
        try:
            while not self._stopping:
                time.sleep(poll_interval)
                if self._hangup and self.on_hangup is not None:
                    self._hangup = False
                    self.on_hangup()
                self._restart_dead()
        finally:
            for child in self.children:  # in start order: receiver first
                child.stop()
            for service in reversed(self.services):
                service.stop()
        return self.exit_code

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for part in [*self.services, *self.children]:  # what the children need comes first
            if not part.started or part.running:
                continue
            status = part.exit_status()
            while part.restarts and now - part.restarts[0] > RESTART_WINDOW_SECONDS:
                part.restarts.popleft()
            if len(part.restarts) >= MAX_RESTARTS:
                log.error(
                    "%s exited (%s) %d times within %.0f s; stopping the hub",
                    part.name,
                    status,
                    MAX_RESTARTS,
                    RESTART_WINDOW_SECONDS,
                )
                self.exit_code = 1
                self._stopping = True
                return
            log.warning("%s exited (%s); restarting it", part.name, status)
            part.restarts.append(now)
            try:
                part.start(self.env)
            except Exception as exc:  # tried again at the next poll, within the budget
                log.error("%s did not start again: %s", part.name, exc)
