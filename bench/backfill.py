"""`crmhub backfill` of 20,000 records beside live webhooks: the backfill's rate, and the live
webhooks' receipt-to-write latency during it against the same traffic without it.

The hub (`crmhub serve`: receiver, worker, beat) runs on a Redis (bench_redis) with two fakes
over loopback: a Salesforce holding N Contacts and a generic REST CRM receiving the writes.
A polling source lists the Contacts; its mapping writes each to the CRM (so the backfill's
events become deliveries competing with live ones); a Stripe source's signed webhooks are
written to the same CRM. Phase 1 sends live webhooks at --rate for --baseline seconds; phase 2
runs `crmhub backfill --json` and sends live webhooks at the same rate until it ends. Each
live delivery's receipt-to-write latency is read from the ledger (created_at -> updated_at of
the delivered delivery).

    .venv/bin/python bench/backfill.py [--records 20000] [--rate 20] [--baseline 15]
        [--max-backlog N] [--kill-after SECONDS] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BenchError,
    BenchRedis,
    add_common_flags,
    bench_main,
    delete_prefix,
    free_port,
    kill_group,
    log,
)

from core.ledger.deliveries import read_fields
from core.ledger.event_fields import read_delivery_ids
from core.ledger.keys import LedgerKeys

CRMHUB = str(Path(sys.executable).parent / "crmhub")
STRIPE_SECRET = "whsec_bench_backfill_secret"
SF = {"SF_CLIENT_ID": "sf-client", "SF_CLIENT_SECRET": "sf-secret", "SF_REFRESH_TOKEN": "sf-1"}
CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
  sf-contacts:
    poll: {{connection: salesforce, object: Contact, every: 1h, cursor: SystemModstamp,
           fields: [Id, Email, LastName], page_size: 2000}}
connections:
  salesforce:
    connector: salesforce
    login_url: {salesforce}
    auth: {{type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
            refresh_token_env: SF_REFRESH_TOKEN}}
  crm:
    connector: http
    base_url: {crm}
mappings:
  live-customers:
    source: stripe
    connection: crm
    object: customers
    match: {{field: email, from: data.object.email, normalize: email}}
    fields: {{email: data.object.email, name: data.object.name}}
  backfilled-contacts:
    source: sf-contacts
    connection: crm
    object: people
    match: {{field: email, from: Email, normalize: email}}
    fields: {{email: Email, last_name: LastName}}
"""


def _fake(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    match = re.search(r"http://[\d.]+:(\d+)", proc.stdout.readline())
    if not match:
        kill_group(proc)
        raise BenchError(f"{module} did not start")
    return proc, f"http://127.0.0.1:{match.group(1)}"


def _signed(n: int, run: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": f"evt_{run}_{n}",
            "type": "customer.updated",
            "data": {"object": {"email": f"live{n}@example.com", "name": f"Live {n}"}},
        }
    ).encode()
    stamp = str(int(time.time()))
    sig = hmac.new(STRIPE_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return body, {"Stripe-Signature": f"t={stamp},v1={sig.hexdigest()}"}


class Live(threading.Thread):
    """Signed webhooks at `rate` per second until stopped; the event ids it got back."""

    def __init__(self, url: str, rate: float, run: str, start_at: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rate, self.run_id, self.n = url, rate, run, start_at
        self.done = threading.Event()
        self.sent: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            next_at = time.monotonic()
            while not self.done.is_set():
                body, headers = _signed(self.n, self.run_id)
                self.n += 1
                answer = client.post("/webhooks/stripe", content=body, headers=headers)
                if answer.status_code == 202:
                    self.sent.append(answer.json()["event_id"])
                next_at += 1 / self.rate
                time.sleep(max(0.0, next_at - time.monotonic()))


STATE_CREATED_UPDATED = ("state", "created_at", "updated_at")


def _latencies(client: redis.Redis, prefix: str, event_ids: list[str]) -> list[float]:
    """Receipt-to-write (s) of each live event's delivery, once every one is delivered."""
    deadline = time.time() + 600
    while True:
        listed = read_delivery_ids(client, LedgerKeys(prefix), event_ids)
        deliveries = [d for ids in listed for d in ids]
        # an event's first delivery is held in its event's hash: read it where it is
        rows = read_fields(client, LedgerKeys(prefix), deliveries, STATE_CREATED_UPDATED)
        if all(r[0] == b"delivered" for r in rows) and len(rows) == len(event_ids):
            return sorted((int(r[2]) - int(r[1])) / 1000 for r in rows)
        if time.time() > deadline:
            raise BenchError("live deliveries were not all delivered within 10 minutes")
        time.sleep(0.5)


def _killed_after(command: list[str], env: dict[str, str], cwd: Path, seconds: float) -> int:
    """Start the backfill, SIGKILL it after `seconds` (0: not at all), and say how far its
    progress bar had got; the run after it must resume there and lose nothing."""
    if seconds <= 0:
        return 0
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    time.sleep(seconds)
    if proc.poll() is not None:
        raise BenchError(f"the backfill ended before the kill at {seconds} s: lower --kill-after")
    kill_group(proc)
    assert proc.stderr is not None
    counts = re.findall(r"([\d,]+) records \(", proc.stderr.read())
    return int(counts[-1].replace(",", "")) if counts else 0


def _p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def setup(args: argparse.Namespace) -> Any:
    def run(tmp: Path, rds: BenchRedis) -> dict[str, Any]:
        prefix = f"bench-backfill-{uuid.uuid4().hex[:8]}"
        sf, sf_url = _fake(
            "connectors.fakes.salesforce",
            "--client-id", SF["SF_CLIENT_ID"], "--client-secret", SF["SF_CLIENT_SECRET"],
            "--refresh-token", SF["SF_REFRESH_TOKEN"],
        )  # fmt: skip
        crm, crm_url = _fake("connectors.fakes.http")
        hub: subprocess.Popen[bytes] | None = None
        try:
            log(f"making {args.records:,} Contacts in the fake Salesforce")
            with httpx.Client(base_url=sf_url, timeout=60) as control:
                for start in range(0, args.records, 2000):
                    batch = [
                        {"object": "Contact", "LastName": f"B{i}", "Email": f"b{i}@example.com"}
                        for i in range(start, min(args.records, start + 2000))
                    ]
                    control.post("/_control/records", json=batch).raise_for_status()
            config = tmp / "crmhub.yaml"
            config.write_text(CONFIG.format(salesforce=sf_url, crm=crm_url))
            port = free_port()
            env = {
                **os.environ,
                **SF,
                "CRMHUB_CONFIG": str(config),
                "CRMHUB_REDIS_URL": rds.url,
                "CRMHUB_KEY_PREFIX": prefix,
                "CRMHUB_VAR_DIR": str(tmp / "var"),
                "CRMHUB_PORT": str(port),
                "CRMHUB_HOST": "127.0.0.1",
                "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            }
            hub = subprocess.Popen(
                [CRMHUB, "serve"], env=env, cwd=tmp, stdout=(tmp / "serve.log").open("wb"),
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 90
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() > deadline or hub.poll() is not None:
                    raise BenchError("crmhub serve did not become ready")
                time.sleep(0.5)
            client = redis.Redis.from_url(rds.url)
            log(f"phase 1: live webhooks at {args.rate}/s for {args.baseline} s, no backfill")
            live = Live(url, args.rate, prefix, 0)
            live.start()
            time.sleep(args.baseline)
            live.done.set()
            live.join()
            baseline = _latencies(client, prefix, live.sent)
            log("phase 2: crmhub backfill, live webhooks at the same rate meanwhile")
            live2 = Live(url, args.rate, prefix, 10_000_000)
            live2.start()
            started = time.monotonic()
            command = [CRMHUB, "backfill", "sf-contacts", "--json", *args.backfill_args]
            killed = _killed_after(command, env, tmp, args.kill_after)
            done = subprocess.run(
                command, env=env, cwd=tmp, capture_output=True, text=True, timeout=3600
            )  # resumes where the killed one stood
            wall = time.monotonic() - started
            live2.done.set()
            live2.join()
            if done.returncode != 0:
                raise BenchError(f"crmhub backfill failed: {done.stderr[-2000:]}")
            summary = json.loads(done.stdout)
            during = _latencies(client, prefix, live2.sent)
            stats = httpx.get(f"{crm_url}/_control/stats", timeout=10).json()
            progress_lines = [ln for ln in done.stderr.splitlines() if "ETA" in ln]
            return {
                "backfill": summary,
                "wall_seconds": wall,
                "baseline": baseline,
                "during": during,
                "crm_writes": stats["writes"],
                "crm_records": stats["records"],
                "expected_records": args.records + len(live.sent) + len(live2.sent),
                "killed_at_record": killed,
                "progress_sample": progress_lines[-1][-160:] if progress_lines else "",
            }
        finally:
            if hub is not None:
                kill_group(hub)  # type: ignore[arg-type]
            kill_group(sf)
            kill_group(crm)
            delete_prefix(rds.url, prefix)

    return lambda: run


def summarize(results: dict[str, Any], rds: BenchRedis) -> dict[str, Any]:
    b = results["backfill"]
    base, during = results["baseline"], results["during"]
    return {
        # exactly once across the kill: every Contact and live webhook written, none twice
        "valid": b["recorded"] + b["duplicates"] == b["records"] > 0
        and results["crm_records"] == results["crm_writes"] == results["expected_records"],
        "killed_at_record": results["killed_at_record"],
        "redis": rds.origin,
        "backfill": b,
        "backfill_records_per_second": round(b["records"] / b["seconds"], 1),
        "live_baseline": {"n": len(base), "p50_ms": round(_p(base, 0.5) * 1000, 1),
                          "p99_ms": round(_p(base, 0.99) * 1000, 1)},
        "live_during_backfill": {"n": len(during), "p50_ms": round(_p(during, 0.5) * 1000, 1),
                                 "p99_ms": round(_p(during, 0.99) * 1000, 1)},
        "p99_ratio_during_vs_baseline": round(_p(during, 0.99) / _p(base, 0.99), 2)
        if base and during
        else None,
        "crm_writes": results["crm_writes"],
        "crm_records": results["crm_records"],
        "expected_records": results["expected_records"],
        "progress_sample": results["progress_sample"],
    }  # fmt: skip


def report(summary: dict[str, Any], results: dict[str, Any]) -> None:
    b = summary["backfill"]
    print(f"backfill: {b['records']:,} records, {b['recorded']:,} recorded, "
          f"{b['duplicates']:,} duplicates, {b['pages']} pages in {b['seconds']:.1f} s: "
          f"{summary['backfill_records_per_second']:,.0f} records/s")  # fmt: skip
    for name in ("live_baseline", "live_during_backfill"):
        row = summary[name]
        print(f"{name:22} {row['n']:5} webhooks  p50 {row['p50_ms']:8.1f} ms  "
              f"p99 {row['p99_ms']:8.1f} ms")  # fmt: skip
    if summary["killed_at_record"]:
        print(f"killed (SIGKILL) at record {summary['killed_at_record']:,}, then resumed")
    print(f"the CRM: {summary['crm_records']:,} records, {summary['crm_writes']:,} writes "
          f"(expected {summary['expected_records']:,} of each)")  # fmt: skip
    print(f"live p99 during / without the backfill: {summary['p99_ratio_during_vs_baseline']}")
    print(f"progress bar (last line): {summary['progress_sample']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0, help="live webhooks per second")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds of phase 1")
    parser.add_argument(
        "--max-backlog", type=int, help="passed to `crmhub backfill` (default: its own)"
    )
    parser.add_argument(
        "--kill-after", type=float, default=8.0,
        help="SIGKILL the first backfill after this many seconds and resume it (0: no kill)",
    )  # fmt: skip
    add_common_flags(parser)
    args = parser.parse_args(argv)
    args.backfill_args = (
        [] if args.max_backlog is None else ["--max-backlog", str(args.max_backlog)]
    )
    return bench_main(
        "bench/backfill.py",
        "crmhub-bench-backfill-",
        embedded_redis=args.embedded_redis,
        as_json=args.json,
        setup=lambda: setup(args)(),
        summarize=summarize,
        report=report,
    )


if __name__ == "__main__":
    sys.exit(main())
