"""Ports for the servers the suite starts, never handed out twice.

`bind(("127.0.0.1", 0))` then close (core.embedded_redis.free_port) can give two xdist workers
the same port a moment apart, and the receiver listens with SO_REUSEPORT (app/gunicorn_conf.py):
two hubs started together on one port both bind it, and each then answers half of the other's
requests (seen on CI: a test's operator API answered 404 by another test's hub). So each
xdist worker takes ports from a range of its own, below Linux's ephemeral range (32768-60999,
where bind(0) and outgoing connections take theirs), each at most once per process, and only
one that a plain bind shows free right now.
"""

from __future__ import annotations

import itertools
import os
import socket

LOWEST, HIGHEST = 15000, 32000


def _own_range() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    span = (HIGHEST - LOWEST) // workers
    return range(LOWEST + index * span, LOWEST + (index + 1) * span)


_RANGE = _own_range()
# start at a place of this process's own, so two test runs on one machine start apart
_CANDIDATES = itertools.cycle(
    itertools.chain(
        _RANGE[os.getpid() % len(_RANGE) :],
        _RANGE[: os.getpid() % len(_RANGE)],
    )
)
_GIVEN: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, never given before in this process."""
    for _ in range(len(_RANGE)):
        port = next(_CANDIDATES)
        if port not in _GIVEN and _bindable(port):
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no free port left in {_RANGE.start}-{_RANGE.stop - 1}")
