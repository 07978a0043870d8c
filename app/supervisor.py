"""Run the hub's processes side by side (`crmhub serve`): start, watch, restart, stop in order.

Each child runs in its own session, so a Ctrl-C reaches only the supervisor, which then stops
the children in a safe order: the receiver first (no new events), then the scheduler, then the
worker (its running tasks finish or go back to the ledger by lease), the demo target last.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    stop_timeout: float = 20.0
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)

    def start(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(list(self.argv), env=dict(env), start_new_session=True,
                                        stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

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


class Supervisor:
    def __init__(self, children: Sequence[Child], env: Mapping[str, str]) -> None:
        self.children = list(children)
        self.env = env
        self._stopping = False
        self.exit_code = 0

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        self._stopping = True

    def run(self, poll_interval: float = 0.5) -> int:
        for child in self.children:
            child.start(self.env)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            while not self._stopping:
                time.sleep(poll_interval)
                self._restart_dead()
        finally:
            for child in self.children:   # in start order: receiver first
                child.stop()
        return self.exit_code

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None or child.running:
                continue
            code = child.process.returncode
            while child.restarts and now - child.restarts[0] > RESTART_WINDOW_SECONDS:
                child.restarts.popleft()
            if len(child.restarts) >= MAX_RESTARTS:
                log.error("%s exited (code %s) %d times within %.0f s; stopping the hub",
                          child.name, code, MAX_RESTARTS, RESTART_WINDOW_SECONDS)
                self.exit_code = 1
                self._stopping = True
                return
            log.warning("%s exited (code %s); restarting it", child.name, code)
            child.restarts.append(now)
            child.start(self.env)
