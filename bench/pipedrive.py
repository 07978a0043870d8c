"""Pipedrive drain: a backlog of N events delivered to the fake Pipedrive, for records seen
for the first time and for records already seen once.

What is measured
    N (`--events`, 10,000) Stripe-shaped `customer.created` events, each its own person
    (distinct email: distinct record key and person), are recorded while no worker runs; then
    the hub's Celery worker (prefork, CRMHUB_WORKER_CONCURRENCY, default 2, the Procfile's
    command) drains them into the fake Pipedrive (connectors/fakes/pipedrive/) through
    connectors/pipedrive.py, with an API token. Two phases, one after the other, on the same
    ledger (so the second finds the ids the first remembered):

    first seen      every person is new: an exact email search, then a create (2 calls)
    already seen    N more events for the same N persons: the remembered id, one PATCH each
                    (the issue's target: at most 1.1 Pipedrive API calls per event)

    Per phase: events/s = N / (the phase's first claim -> its last delivery), both from the
    ledger; API calls per event = the fake's `api_calls` during the phase / N. Baseline, same
    run and machine: a bare loop (two threads, like the worker's two processes, one httpx
    client each) sending the same N PATCHes straight to the fake; the ratio is hub events/s
    over bare events/s for the already-seen phase.

    `--json` prints one object: `crm`, `events`, `api_calls`, `calls_per_event`,
    `events_per_second` (the already-seen phase, which the target is about), `target`,
    `target_met`, the `first_seen` phase's figures, the bare baseline and `valid`.

Method
    As bench/salesforce.py (the shared pieces are bench/crm_drain.py): the backlog is
    recorded through the hub's own intake and ledger code (Ledger.accept in chunks of 200).
    A run is valid when every event of both phases was delivered, the fake holds N persons,
    saw no request Pipedrive would refuse, and there is no dead letter; otherwise exit
    status 1 (2: could not set up; 130: interrupted).

Run it from the repository root: `.venv/bin/python bench/pipedrive.py [--events N] [--json]`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import BenchError, BenchRedis, add_common_flags, bench_main, hub_env, log, running
from crm_drain import FakeCrm, drain, record_backlog
from hubspot import cleanup

TARGET = 1.1  # calls per event for records already seen once
CONNECTION = "pipedrive"
TOKEN = "bench-pipedrive-token"

HUB_CONFIG = """\
# written by bench/pipedrive.py: Stripe-shaped customers -> Pipedrive persons
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: CRMHUB_BENCH_STRIPE_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: pipedrive
    base_url: {base_url}
    auth: {{type: api_token, token_env: PIPEDRIVE_API_TOKEN}}
mappings:
  customer-to-person:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: {connection}
    object: persons
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      name: {{from: data.object.name, required: true}}
      email: {{from: data.object.email, transform: [email]}}
      phone: data.object.phone
      job_title: data.object.metadata.title
"""


@dataclass(frozen=True)
class Options:
    events: int
    concurrency: int
    stall_timeout: float
    embedded_redis: bool
    json: bool


def body(n: int, phase: str, created: int) -> dict[str, Any]:
    return {
        "id": f"evt_bench_{phase}_{n:06d}",
        "type": "customer.created",
        "created": created,
        "data": {
            "object": {
                "email": f"Person{n:06d}@Example.com",
                "name": f"Bench Person{n:06d}",
                "phone": f"+1 555 {n:07d}",
                "metadata": {"title": f"Engineer ({phase})"},
            }
        },
    }


def phase_run(
    label: str,
    phase: str,
    opts: Options,
    env: dict[str, str],
    tmp: Path,
    fake: FakeCrm,
    rds: BenchRedis,
    expected_done: int,
) -> dict[str, Any]:
    log(f"{label}: recording {opts.events} events")
    created = int(time.time())
    record_backlog(env, opts.events, lambda n: body(n, phase, created))
    calls_before = fake.control("GET", "stats")["api_calls"]
    drained = drain(label, env, rds, tmp, CONNECTION, expected_done, opts.stall_timeout)
    stats = fake.control("GET", "stats")
    calls = stats["api_calls"] - calls_before
    result = {
        "phase": label,
        "events": opts.events,
        "delivered": drained.counts.get("delivered", 0),
        "dead": drained.counts.get("dead", 0),
        "seconds": round(drained.seconds, 2) if drained.seconds else None,
        "events_per_second": drained.rate(opts.events),
        "api_calls": calls,
        "calls_per_event": round(calls / opts.events, 4),
        "persons": stats["records"]["persons"],
        "violations": stats["violations"],
    }
    log(
        f"  {label}: {result['events_per_second']} events/s, "
        f"{result['calls_per_event']} API calls per event"
    )
    return result


def bare(opts: Options, fake: FakeCrm) -> dict[str, Any]:
    """The same N already-seen writes with no hub: one PATCH each, two threads."""
    ids = {
        p["emails"][0]["value"].lower(): p["id"]
        for p in fake.control("GET", "records", params={"object": "persons"})["records"]
    }
    wanted = [ids[f"person{n:06d}@example.com"] for n in range(opts.events)]

    def run(part: list[int]) -> None:
        with httpx.Client(base_url=fake.url, headers={"x-api-token": TOKEN}, timeout=30) as c:
            for record_id in part:
                answer = c.patch(
                    f"/api/v2/persons/{record_id}", json={"job_title": "Engineer (bare)"}
                )
                if answer.status_code != 200:
                    raise BenchError(f"bare PATCH answered {answer.status_code}: {answer.text}")

    threads = max(1, opts.concurrency)
    parts = [wanted[i::threads] for i in range(threads)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, parts))
    seconds = time.monotonic() - started
    return {
        "events": opts.events,
        "seconds": round(seconds, 2),
        "events_per_second": round(opts.events / seconds, 1),
    }


def bench(opts: Options, tmp: Path, rds: BenchRedis) -> dict[str, Any]:
    (tmp / "var").mkdir(exist_ok=True)
    fake = FakeCrm(
        "pipedrive", "Pipedrive", ["--api-token", TOKEN, "--daily-tokens", "1000000000"], tmp
    )
    prefix = f"crmhub-bench-pd-{secrets.token_hex(4)}"
    log(f"Redis: {rds.origin} ({rds.persistence}); logs in {tmp}")
    try:
        with cleanup(rds.url, [prefix]), running(fake.service):
            fake.wait_ready()
            config = tmp / f"{prefix}.yaml"
            config.write_text(HUB_CONFIG.format(connection=CONNECTION, base_url=fake.url))
            env = hub_env(
                rds,
                prefix,
                tmp,
                config,
                opts.concurrency,
                PIPEDRIVE_API_TOKEN=TOKEN,
                CRMHUB_BENCH_STRIPE_SECRET="whsec_" + secrets.token_hex(8),
            )
            args = (opts, env, tmp, fake, rds)
            # the second phase runs on the same ledger: it finds the ids the first remembered
            first = phase_run("first seen", "new", *args, expected_done=opts.events)
            seen = phase_run("already seen", "seen", *args, expected_done=2 * opts.events)
            baseline = bare(opts, fake)
            log(f"  bare PATCH loop: {baseline['events_per_second']} events/s")
            return {"first_seen": first, "already_seen": seen, "bare": baseline}
    finally:
        fake.http.close()


def summarize(opts: Options, results: dict[str, Any], rds: BenchRedis) -> dict[str, Any]:
    first, seen, baseline = results["first_seen"], results["already_seen"], results["bare"]
    valid = (
        first["delivered"] == opts.events
        and seen["delivered"] == 2 * opts.events
        and seen["dead"] == 0
        and seen["persons"] == opts.events
        and seen["violations"] == 0
    )
    ratio = (
        round(seen["events_per_second"] / baseline["events_per_second"], 2)
        if seen["events_per_second"] and baseline["events_per_second"]
        else None
    )
    return {
        "crm": "pipedrive",
        "events": opts.events,
        "api_calls": seen["api_calls"],
        "calls_per_event": seen["calls_per_event"],
        "events_per_second": seen["events_per_second"],
        "target": {"calls_per_event": TARGET, "for": "records already seen once"},
        "target_met": seen["calls_per_event"] <= TARGET,
        "first_seen": first,
        "already_seen": seen,
        "bare_patch_loop": baseline,
        "ratio_hub_vs_bare": ratio,
        "concurrency": opts.concurrency,
        "redis": rds.origin,
        "valid": valid,
    }


def print_report(summary: dict[str, Any]) -> None:
    print(
        f"Pipedrive drain: {summary['events']} events per phase, worker concurrency "
        f"{summary['concurrency']}, Redis {summary['redis']}"
    )
    print(f"{'phase':16} {'events/s':>9} {'API calls':>10} {'calls/event':>12}")
    for r in (summary["first_seen"], summary["already_seen"]):
        print(
            f"{r['phase']:16} {r['events_per_second'] or '-':>9} {r['api_calls']:>10} "
            f"{r['calls_per_event']:>12}"
        )
    bare_rate = summary["bare_patch_loop"]["events_per_second"]
    print(f"bare PATCH loop: {bare_rate} events/s; hub/bare {summary['ratio_hub_vs_bare']}")
    print(
        f"target (already seen): <= {TARGET} calls per event: "
        f"{'met' if summary['target_met'] else 'NOT met'}{'' if summary['valid'] else '  INVALID'}"
    )


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Drain a backlog into the fake Pipedrive, first-seen and already-seen "
        "records: events/s and Pipedrive API calls per event, against a bare PATCH loop."
    )
    parser.add_argument("--events", type=int, default=10000, help="backlog size (10000)")
    parser.add_argument(
        "--stall-timeout", type=float, default=120.0, help="give up after this long idle (120 s)"
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    if ns.events < 1:
        parser.error("--events must be positive")
    return Options(
        events=ns.events,
        concurrency=int(os.environ.get("CRMHUB_WORKER_CONCURRENCY") or 2),
        stall_timeout=ns.stall_timeout,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    return bench_main(
        "bench/pipedrive.py",
        "crmhub-bench-pipedrive-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, opts),
        summarize=functools.partial(summarize, opts),
        report=lambda summary, _results: print_report(summary),
    )


if __name__ == "__main__":
    sys.exit(main())
