"""The one WorkerRuntime of this process: built on first use, rebuilt on a configuration reload.

A task asks for the runtime as it starts (workers.tasks), so a reload announced by `crmhub
reload` is picked up between tasks, never during one: in the prefork pool a process runs one
task at a time, so the old runtime's connectors are closed when nothing uses them.
"""

from __future__ import annotations

import gc
import threading

from connectors.validation import validated_config
from core.ledger import open_ledger
from core.reload import Reloadable
from core.settings import Settings
from workers.runtime import WorkerRuntime

_lock = threading.Lock()
_live: Reloadable[WorkerRuntime] | None = None


def _retire(old: WorkerRuntime, new: WorkerRuntime) -> None:
    old.close()


def get() -> WorkerRuntime:
    """The runtime for the task about to start (its configuration the current one)."""
    global _live
    with _lock:
        if _live is None:
            settings = Settings.from_env()
            ledger = open_ledger(settings)
            generation = ledger.generations.current()  # before the file
            runtime = WorkerRuntime(
                settings=settings, config=validated_config(settings), ledger=ledger
            )
            _live = Reloadable(
                runtime,
                generation=generation,
                generations=ledger.generations,
                kind="worker",
                load=lambda: validated_config(settings),
                rebuild=WorkerRuntime.reconfigured,
                swapped=_retire,
            )
            gc.freeze()  # it lives as long as the process (see workers.tasks)
        live = _live
    return live.current()


def reset() -> None:
    global _live
    with _lock:
        if _live is not None:
            _live.value.close()
        _live = None
