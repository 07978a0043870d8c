"""`crmhub serve`'s supervisor: a crashed part is restarted, a part that keeps crashing stops
the hub (loudly, exit 1) instead of flapping forever, and a stop request stops every part."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from app.supervisor import MAX_RESTARTS, Child, Supervisor


def test_a_part_that_keeps_crashing_stops_the_hub_after_the_restart_budget(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crashy = Child(
        "crashy",
        [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"],
    )
    began = time.monotonic()
    assert Supervisor([crashy], dict(os.environ)).run(poll_interval=0.05) == 1
    assert time.monotonic() - began < 30
    assert len(starts.read_text()) == MAX_RESTARTS + 1  # first start + each restart


def test_a_stop_request_stops_every_part_and_exits_cleanly() -> None:
    sleeper = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], stop_timeout=5
    )
    supervisor = Supervisor([sleeper], dict(os.environ))
    threading.Timer(0.5, supervisor.request_stop).start()
    assert supervisor.run(poll_interval=0.05) == 0
    assert sleeper.process is not None and sleeper.process.poll() is not None


def test_a_crashed_part_is_restarted(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    once = Child(
        "once",
        [
            sys.executable,
            "-c",
            f"import os, time\nif os.path.exists({str(marker)!r}): time.sleep(60)"
            f"\nopen({str(marker)!r}, 'w').close()",
        ],
        stop_timeout=5,
    )
    supervisor = Supervisor([once], dict(os.environ))
    threading.Timer(1.5, supervisor.request_stop).start()
    assert supervisor.run(poll_interval=0.05) == 0
    assert marker.exists() and len(once.restarts) == 1  # died once, came back, stayed
