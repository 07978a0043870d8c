"""Reloading the configuration in running processes, without restarting them.

`crmhub reload` (or SIGHUP to any hub process) checks the configuration exactly as `crmhub
config check` does and, only if it is valid, increments a generation number in Redis
(`<prefix>:config:generation`, kept by core/ledger/generations.py). Every receiver and worker
process compares the generation it loaded with that number before a request or a task, at
most once per CHECK_INTERVAL_SECONDS (one GET; a clock comparison otherwise, so the hot path
stays as it was), and when it moved, reads the YAML again and swaps what it built from it (the
receiver's routes and verifiers, the worker's mappings and connectors) between requests and
tasks, never during one. Work already under way finishes with the configuration it started
with; nothing is dropped.

So once `crmhub reload` has announced a generation and waited one interval, every request or
delivery that starts uses the new configuration. A process that cannot load it (the file
changed again since the check, or its host lacks a secret) logs every problem, notes the
refusal in Redis (`crmhub reload` reports it) and keeps the configuration it has.

Why a number in Redis rather than signals alone: the hub's processes may run on several hosts
(the Procfile's web, worker and beat; containers), and Redis is what they all share already;
a signal reaches one process on one host. The beat holds nothing from the YAML (it only
schedules the sweeper, which runs in the worker), so it has nothing to reload.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

from core.config import Config
from core.errors import ConfigError, ConfigProblem
from core.ledger.generations import ConfigGenerations

log = logging.getLogger("crmhub.reload")

T = TypeVar("T")

#: how stale a process's view of the generation may be; `crmhub reload` waits this long
CHECK_INTERVAL_SECONDS = 1.0


def this_process(kind: str) -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


class Reloadable(Generic[T]):
    """What a process built from the configuration (the receiver's hub, a worker's runtime),
    rebuilt when the hub's configuration generation moves.

    `generation`: the one read *before* the configuration was loaded (so a reload announced
    in between is not missed). `rebuild(old, config)` makes the new value; `swapped(old, new)`
    runs after the swap (to close what the old one held).
    """

    def __init__(
        self,
        value: T,
        *,
        generation: int,
        generations: ConfigGenerations,
        kind: str,
        load: Callable[[], Config],
        rebuild: Callable[[T, Config], T],
        swapped: Callable[[T, T], None] | None = None,
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.value = value
        self.generation = generation
        self._generations = generations
        self._kind = kind
        self._load = load
        self._rebuild = rebuild
        self._swapped = swapped
        self._interval = interval
        self._clock = clock
        self._next_check = clock() + interval
        self._refused = -1
        self._lock = threading.Lock()

    def current(self) -> T:
        """The value to use for the request or task about to start."""
        if self._clock() < self._next_check:
            return self.value
        # one thread checks; the others of this process wait for it (a short GET, or a
        # reload they must not start without)
        with self._lock:
            if self._clock() >= self._next_check:
                self._check()
                self._next_check = self._clock() + self._interval
        return self.value

    def _check(self) -> None:
        generation = self._generations.current()
        if generation in (self.generation, self._refused) or generation == 0:
            return
        try:
            new = self._rebuild(self.value, self._load())
        except ConfigError as exc:
            self._refuse(generation, exc.problems)
            return
        except Exception as exc:  # a bug must not take the running configuration with it
            log.exception("%s: building configuration generation %d failed", self._kind, generation)
            self._refuse(generation, [ConfigProblem("", "", f"internal error: {exc!r}")])
            return
        old, self.value, self.generation = self.value, new, generation
        log.warning("%s: configuration generation %d loaded", self._kind, generation)
        if self._swapped is not None:
            self._swapped(old, new)
        _refreeze()

    def _refuse(self, generation: int, problems: list[ConfigProblem]) -> None:
        self._refused = generation
        for problem in problems:
            log.error(
                "%s: configuration generation %d refused: %s", self._kind, generation, problem
            )
        log.error(
            "%s: keeping the configuration it runs (generation %d)", self._kind, self.generation
        )
        try:
            self._generations.refuse(
                this_process(self._kind), generation, [str(p) for p in problems[:50]]
            )
        except redis.RedisError:
            log.warning("%s: could not record the refusal in Redis", self._kind)


def _refreeze() -> None:
    """Processes take their long-lived objects out of the cyclic collector's view (gc.freeze,
    see workers.tasks); what the old configuration held would stay frozen for good. Once per
    reload: thaw, collect, freeze again."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()


def reload_now(
    kind: str, load: Callable[[], Config], generations: Callable[[], ConfigGenerations]
) -> int | None:
    """Validate and announce (what a SIGHUP to a hub process does); logs the outcome.
    Returns the announced generation, or None when refused (nothing announced)."""
    try:
        config = load()
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s: reload refused: %s", kind, problem)
        log.error(
            "%s: reload refused (%d problems); the hub keeps its configuration",
            kind,
            len(exc.problems),
        )
        return None
    try:
        generation = generations().announce()
    except Exception as exc:
        log.error("%s: reload not announced: %s", kind, exc)
        return None
    log.warning(
        "%s: %s is valid; announced configuration generation %d", kind, config.path, generation
    )
    return generation


def reload_on_hangup(
    kind: str, load: Callable[[], Config], generations: Callable[[], ConfigGenerations]
) -> None:
    """SIGHUP to this process: validate and announce, in a thread (not in the handler)."""

    def handler(signum: int, frame: object) -> None:
        threading.Thread(
            target=reload_now, args=(kind, load, generations), name="crmhub-reload", daemon=True
        ).start()

    signal.signal(signal.SIGHUP, handler)
