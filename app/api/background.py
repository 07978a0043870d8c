"""Bulk operations past the size answered at once run on a thread of the web process that
was asked; their progress lives in the ledger (core/ledger/bulk.py), so when that process
stops, the next API request to any web process (at most every ADOPT_EVERY seconds per
process) takes the operation over where it stood."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from app.runtime import Hub
from core import dead_letters

log = logging.getLogger("crmhub.operations")
ADOPT_EVERY = 10.0


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BackgroundRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_adopt = 0.0

    def run(self, hub: Hub, op_id: str) -> None:
        self._thread(
            lambda: dead_letters.run_operation(hub.ledger, hub.config, op_id, owner=_owner())
        )

    def adopt_stopped(self, hub: Hub) -> None:
        """Take over operations whose runner stopped (throttled: a cheap check)."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_adopt < ADOPT_EVERY:
                return
            self._last_adopt = now
        self._thread(lambda: dead_letters.resume_unfinished(hub.ledger, hub.config, owner=_owner()))

    @staticmethod
    def _thread(work: Callable[[], object]) -> None:
        def guarded() -> None:
            try:
                work()
            except Exception:  # a runner's failure is logged; the lease lets another resume
                log.exception("bulk operation runner failed")

        threading.Thread(target=guarded, name="crmhub-bulk", daemon=True).start()
