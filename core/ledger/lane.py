"""A Redis connection of its own for the receiver's record script.

Every accepted webhook costs one record-script call. Through redis-py's client, each call also
pays for the pool (check-out, check-in, fork check), the retry wrapper and the command-name
plumbing: measured on a 2-core host, ~86 us of client CPU per call against ~46 us for the
same EVALSHA sent on a connection directly, that is more than the rest of the request's own
Python work. The group recorder already makes the calls of a process one at a time, so one
connection held under a lock serves them all without waiting on each other.

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
    """Runs one registered script on a dedicated connection, one call at a time."""

    def __init__(self, client: redis.Redis, script: Script) -> None:
        self._pool = client.connection_pool
        self._script = script
        self._lock = threading.Lock()
        self._connection: ConnectionInterface | None = None
        self._pid = 0

    def __call__(self, args: Sequence[str | int]) -> Any:
        with self._lock:
            try:
                return self._evalsha(self._connect(), args)
            except (redis.ConnectionError, redis.TimeoutError):
                # A connection gone stale while idle (Redis restarted, a proxy's idle timeout)
                # gets one fresh try, as the shared client's retry policy gives. If the lost
                # call did run, the retry finds its events recorded and reports duplicates.
                self._drop()
                try:
                    return self._evalsha(self._connect(), args)
                except (redis.ConnectionError, redis.TimeoutError):
                    self._drop()
                    raise

    def _evalsha(self, connection: ConnectionInterface, args: Sequence[str | int]) -> Any:
        try:
            connection.send_command("EVALSHA", self._script.sha, 0, *args)
            return connection.read_response()
        except NoScriptError:
            # Redis restarted or its script cache was flushed: load it and run it again.
            connection.send_command("SCRIPT", "LOAD", self._script.script)
            connection.read_response()
            connection.send_command("EVALSHA", self._script.sha, 0, *args)
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
