"""The one WorkerRuntime of this process, built on first use."""

from __future__ import annotations

import gc
import threading

from core.settings import Settings
from workers.runtime import WorkerRuntime

_lock = threading.Lock()
_runtime: WorkerRuntime | None = None


def get() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime.build(Settings.from_env())
            gc.freeze()   # it lives as long as the process (see workers.tasks)
        return _runtime


def reset() -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None
