"""A Redis connection of its own for the ledger's scripts.

Every accepted webhook costs one record-script call, every delivery a claim and a finish.
Through redis-py's client, each call also pays for the pool (check-out, check-in, fork check),
the retry wrapper and the command-name plumbing: measured on a 2-core host, ~86 us of client
CPU per call against ~46 us for the same EVALSHA sent on a connection directly, more than the
rest of a webhook's own Python work. A process makes its script calls one at a time anyway
(the receiver's group recorder leads one call at a time; a worker process runs one task), so
one connection held under a lock serves them without waiting on each other; Redis runs
scripts one at a time in any case.

Redis errors are left to the caller (Ledger translates them once, at its edge).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.connection import ConnectionInterface
from redis.exceptions import NoScriptError


class ScriptLane:
    """Runs registered scripts on a dedicated connection, one call at a time."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._connection: ConnectionInterface | None = None
        self._pid = 0

    def __call__(self, script: Script, args: Sequence[str | int]) -> Any:
        with self._lock:
            try:
                return self._evalsha(self._connect(), script, args)
            except (redis.ConnectionError, redis.TimeoutError):
                # A connection gone stale while idle (Redis restarted, a proxy's idle timeout)
                # gets one fresh try, as the shared client's retry policy gives. The scripts
                # are safe to repeat: if the lost call did run, a record finds its events
                # recorded (duplicates), a claim finds the delivery no longer pending, a finish
                # finds its lease gone.
                self._drop()
                try:
                    return self._evalsha(self._connect(), script, args)
                except (redis.ConnectionError, redis.TimeoutError):
                    self._drop()
                    raise

    @staticmethod
    def _evalsha(connection: ConnectionInterface, script: Script,
                 args: Sequence[str | int]) -> Any:
        try:
            connection.send_command("EVALSHA", script.sha, 0, *args)
            return connection.read_response()
        except NoScriptError:
            # Redis restarted or its script cache was flushed: load it and run it again.
            connection.send_command("SCRIPT", "LOAD", script.script)
            connection.read_response()
            connection.send_command("EVALSHA", script.sha, 0, *args)
            return connection.read_response()

    def _connect(self) -> ConnectionInterface:
        # a connection made before a fork belongs to the parent: the child makes its own
        connection = self._connection
        if connection is None or self._pid != os.getpid():
            connection = self._connection = self._pool.make_connection()
            self._pid = os.getpid()
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
