"""A Redis connection of its own for the ledger's scripts.

Every accepted webhook costs one accept-script call, every delivery a claim and a finish.
Through redis-py's client, each call also pays for the pool (check-out, check-in, fork check),
the retry wrapper and the command-name plumbing: measured on a 2-core host, ~86 us of client
CPU per call against ~46 us for the same EVALSHA sent on a connection directly, more than the
rest of a webhook's own Python work. A process makes its script calls one at a time anyway
(the receiver's group acceptor leads one call at a time; a worker process runs one task), so
one connection held under a lock serves them without waiting on each other; Redis runs
scripts one at a time in any case.

The connection is built from the client's connection settings but is not the pool's: the pool
counts every connection it makes against its maximum and only gets the count back through its
own check-in, so a lane that replaced its pooled connection after each failure used up the
pool for good (issue 9: ~50 failed calls while Redis was down, and every webhook answered 503
until the process was restarted). Made here, a lost connection is simply dropped and the next
call makes a new one.

Redis errors are left to the caller (Ledger translates them once, at its edge).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.connection import ConnectionInterface
from redis.exceptions import NoScriptError
from redis.retry import Retry

T = TypeVar("T")
_LOST = (redis.ConnectionError, redis.TimeoutError)


class ScriptLane:
    """Runs registered scripts on a dedicated connection, one call at a time."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        # No retries inside the connection: the lane decides (below). A connect that fails
        # while Redis is down then fails at once, and the receiver answers 503 without delay.
        self._connection_kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._lock = threading.Lock()
        self._connection: ConnectionInterface | None = None
        self._pid = 0

    def __call__(self, script: Script, args: Sequence[str | bytes | int]) -> Any:
        with self._lock:
            return self._run(lambda connection: self._evalsha(connection, script, args))

    def run_and_wait(
        self, script: Script, args: Sequence[str | bytes | int], replicas: int, timeout_ms: int
    ) -> tuple[Any, int]:
        """Run a script, then WAIT for `replicas` replicas to have its writes (at most
        `timeout_ms`), both sent together: still one round trip. Returns (the script's
        reply, how many replicas confirmed). WAIT covers every write this connection made,
        so a script that only counts (a duplicate's accept) waits for the earlier ones too."""
        with self._lock:
            return self._run(
                lambda connection: self._evalsha_and_wait(
                    connection, script, args, replicas, timeout_ms
                )
            )

    def ping(self) -> None:
        """PING on the lane's own connection: what the scripts (the receiver's accepts among
        them) can reach, which the pool's connections may not tell."""
        with self._lock:
            self._run(_ping)

    def _run(self, command: Callable[[ConnectionInterface], T]) -> T:
        connection, fresh = self._connect()
        try:
            return command(connection)
        except _LOST:
            self._drop()
            if fresh:  # a new connection failed: Redis is down; say so now
                raise
        # A connection gone stale while idle (Redis restarted, a proxy's idle timeout) gets
        # one fresh try, as the shared client's retry policy gives. The scripts are safe to
        # repeat: if the lost call did run, an accept finds its events accepted (duplicates),
        # a claim finds the delivery no longer pending, a finish finds its lease gone.
        connection, _ = self._connect()
        try:
            return command(connection)
        except _LOST:
            self._drop()
            raise

    @staticmethod
    def _evalsha(
        connection: ConnectionInterface, script: Script, args: Sequence[str | bytes | int]
    ) -> Any:
        try:
            connection.send_command("EVALSHA", script.sha, 0, *args)
            return connection.read_response()
        except NoScriptError:
            # Redis restarted or its script cache was flushed: load it and run it again.
            connection.send_command("SCRIPT", "LOAD", script.script)
            connection.read_response()
            connection.send_command("EVALSHA", script.sha, 0, *args)
            return connection.read_response()

    @staticmethod
    def _evalsha_and_wait(
        connection: ConnectionInterface,
        script: Script,
        args: Sequence[str | bytes | int],
        replicas: int,
        timeout_ms: int,
    ) -> tuple[Any, int]:
        commands = [("EVALSHA", script.sha, 0, *args), ("WAIT", replicas, timeout_ms)]
        connection.send_packed_command(connection.pack_commands(commands))
        try:
            reply = connection.read_response()
        except NoScriptError:
            connection.read_response()  # the WAIT's answer, for nothing was written
            connection.send_command("SCRIPT", "LOAD", script.script)
            connection.read_response()
            connection.send_packed_command(connection.pack_commands(commands))
            reply = connection.read_response()
        return reply, int(connection.read_response())

    def _connect(self) -> tuple[ConnectionInterface, bool]:
        """The lane's connection, and whether it is new (made, not yet used, by this call)."""
        connection = self._connection
        # a connection made before a fork belongs to the parent: the child makes its own
        # (and leaves the parent's socket alone)
        if connection is not None and self._pid == os.getpid():
            return connection, False
        connection = self._connection_class(**self._connection_kwargs)
        # Opened here rather than by the first command: a Sentinel-managed connection learns
        # the primary's address in connect(), which sending a command on a fresh connection
        # skips (redis-py connects it to its default, localhost:6379, instead).
        connection.connect()
        self._connection = connection
        self._pid = os.getpid()
        return connection, True

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None


def _ping(connection: ConnectionInterface) -> None:
    connection.send_command("PING")
    reply = connection.read_response()
    if reply not in (b"PONG", "PONG"):
        raise redis.ConnectionError(f"unexpected reply to PING: {reply!r}")
