"""Every CRM's backlog drain in one table: API calls per event and events/s.

What is measured
    Each CRM's own drain benchmark (bench/salesforce.py, bench/pipedrive.py, bench/zoho.py,
    bench/dynamics.py) runs in turn as a child process with `--events N --json` (N: `--events`,
    10,000): a backlog of N events recorded while no worker runs, then drained by the hub's
    Celery worker into that CRM's fake (connectors/fakes/<crm>/), which counts the API calls it
    answered (token requests excluded). Each child measures its own bare baseline where it has
    one and checks its own run (every event delivered, the expected records, no dead letter).

Targets (issue 15)
    Zoho <= 0.02 and Dynamics <= 0.05 calls per event (their batch APIs); Pipedrive, which has
    no batch write, <= 1.1 calls per event for records already seen once (no search before
    every write). Salesforce (issue 13) <= 0.05.

Run it from the repository root: `.venv/bin/python bench/crms.py [--events N] [--only CRM ...]
[--json]`. Exit status 1 when a run is invalid or misses its target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from common import REPO, log

TARGETS = {"salesforce": 0.05, "pipedrive": 1.1, "zoho": 0.02, "dynamics": 0.05}


@dataclass(frozen=True)
class Row:
    crm: str
    events: int
    calls_per_event: float
    events_per_second: float | None
    valid: bool

    @property
    def target_met(self) -> bool:
        return self.valid and self.calls_per_event <= TARGETS[self.crm]


def headline(crm: str, summary: dict[str, Any]) -> Row:
    """The figure each benchmark's JSON gives for the issue's target (for the batching CRMs,
    batching on, contacts alone)."""
    return Row(
        crm,
        int(summary["events"]),
        float(summary["calls_per_event"]),
        summary.get("events_per_second"),
        bool(summary.get("valid", True)),
    )


def run(crm: str, events: int) -> Row:
    log(f"--- {crm}: {events} events")
    done = subprocess.run(
        [sys.executable, f"bench/{crm}.py", "--events", str(events), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if not done.stdout.strip():
        raise SystemExit(f"bench/{crm}.py printed nothing (exit status {done.returncode})")
    return headline(crm, json.loads(done.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000, help="backlog per CRM (10000)")
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="these CRMs only")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead")
    ns = parser.parse_args(argv)
    rows = [run(crm, ns.events) for crm in (ns.only or list(TARGETS))]
    if ns.json:
        print(
            json.dumps(
                [
                    {**row.__dict__, "target": TARGETS[row.crm], "target_met": row.target_met}
                    for row in rows
                ],
                indent=2,
            )
        )
    else:
        print(f"{'crm':11} {'events':>7} {'events/s':>9} {'calls/event':>12} {'target':>7}")
        for row in rows:
            verdict = "met" if row.target_met else ("INVALID" if not row.valid else "NOT met")
            print(
                f"{row.crm:11} {row.events:>7} {row.events_per_second or '-':>9} "
                f"{row.calls_per_event:>12} {TARGETS[row.crm]:>7}  {verdict}"
            )
    return 0 if all(row.target_met for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
