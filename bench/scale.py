"""How the hub scales on this machine: receivers x worker processes -> events/s and CPU/event.

What is measured
    The hub's own pipeline as bench/pipeline.py runs it (gunicorn `app.wsgi:app`, `celery -A
    workers.celery_app worker` + beat, the fake CRM of connectors/fakes/http.py, signed 1 KB
    Stripe events, each its own record), once per combination of `--receivers` (gunicorn
    processes, CRMHUB_WEB_WORKERS; default 1 and 2) and `--workers` (Celery worker processes,
    `--concurrency`; default 1, 2 and 4). Per combination:

    end to end    wrk sends `--events` events as fast as the receivers take them while the
                  workers run: events / (first send -> the target's last write), and the CPU
                  seconds per event of every process involved (the receivers', the workers'
                  and beat's process groups and the target's, read from /proc; Redis's from
                  its INFO; wrk's), so that a rate held back by the machine's 2 cores shows
                  as such, not as a slower hub.
    worker alone  (with 1 receiver) the same number of events accepted while no worker runs,
                  then the workers start: (events - 1) / (first write -> last write).

    The table then shows where the curve flattens, and why: see the README's "Scaling" part.

Run it from the repository root, niced on a shared machine:
`nice .venv/bin/python bench/scale.py [--events 2000] [--json] [--embedded-redis]`.
Exit 0 when every event was written, 1 when some went missing, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from common import BenchRedis, add_common_flags, bench_main, delete_prefix, ensure_wrk, log
from pipeline import (
    Events,
    Options,
    Pipeline,
    Run,
    Target,
    celery_worker_command,
    drain,
    make_pipelines,
    start_target,
    started,
    throughput,
    wait_http,
    warm_up,
)
from receiver import body_parts

PARTS = ("web", "worker", "redis", "target", "wrk")


def parse_args(argv: list[str] | None) -> tuple[Options, list[int], list[int]]:
    parser = argparse.ArgumentParser(
        description="crmhub end to end with 1/2 receivers and 1/2/4 worker processes: "
        "events/s and CPU per event of each part, as a table."
    )
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument(
        "--receivers", default="1,2", help="gunicorn process counts, comma-separated (1,2)"
    )
    parser.add_argument("--workers", default="1,2,4", help="Celery worker process counts (1,2,4)")
    parser.add_argument(
        "--no-worker-alone", action="store_true", help="skip the pre-filled-queue runs"
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    opts = Options(
        events=ns.events,
        latency_seconds=0,
        rate=0,
        rounds=1,
        connections=32,
        wrk_threads=1,
        warmup_events=100,
        stall_timeout=30.0,
        web_workers=1,
        web_threads=int(os.environ.get("CRMHUB_WEB_THREADS") or 8),
        concurrency=1,
        drain=not ns.no_worker_alone,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
    )
    return (
        opts,
        [int(n) for n in ns.receivers.split(",")],
        [int(n) for n in ns.workers.split(",")],
    )


def bench(
    opts: Options, receivers: list[int], workers: list[int], wrk: str, tmp: Path, rds: BenchRedis
) -> list[dict[str, Any]]:
    tag = secrets.token_hex(3)
    prefix = f"crmhub-scale-{os.getpid()}-{tag}"
    secret = "whsec_bench_" + secrets.token_hex(16)
    events = Events(parts=body_parts(tag, int(time.time())), secret=secret)
    client = redis.Redis.from_url(rds.url)
    target_service, target_port = start_target(tmp)
    target = Target(f"http://127.0.0.1:{target_port}")
    log(f"Redis: {rds.origin} ({rds.persistence}); key prefix {prefix}; logs in {tmp}")
    results: list[dict[str, Any]] = []
    try:
        with started([target_service]):
            wait_http(target_service, target_port, "/_control/health", expect=200)
            for web_workers in receivers:
                base = replace(opts, web_workers=web_workers)
                hub = make_pipelines(base, tmp, rds, target.url, prefix, secret)["hub"]
                with started([hub.web]):
                    wait_http(hub.web, hub.port, "/readyz", expect=200)
                    for count in workers:
                        these = replace(base, concurrency=count)
                        queues = f"{prefix}.deliveries,{prefix}.control"
                        pipe = replace(
                            hub,
                            worker_args=celery_worker_command("workers.celery_app", queues, count),
                            workers=[],
                        )
                        run = Run(
                            opts=these,
                            wrk=wrk,
                            tmp=tmp,
                            events=events,
                            target=target,
                            target_service=target_service,
                            redis=client,
                            hub_prefix=prefix,
                        )
                        results.append(measure(these, pipe, run))
                        target.http.post("/_control/reset")
    finally:
        target.close()
        log(f"deleted {delete_prefix(rds.url, prefix)} keys under {prefix}")
        client.close()
    return results


def measure(opts: Options, pipe: Pipeline, run: Run) -> dict[str, Any]:
    """One combination: the receivers up, `opts.concurrency` worker processes."""
    label = f"{opts.web_workers} receiver(s), {opts.concurrency} worker(s)"
    pipe.start_worker()
    try:
        warm_up(run, pipe, label)
        pipe.check_alive()
        e2e = throughput(run, pipe, label)
    finally:
        pipe.stop_worker()
    alone = drain(run, pipe, label) if opts.drain and opts.web_workers == 1 else None
    return {
        "receivers": opts.web_workers,
        "workers": opts.concurrency,
        "end_to_end": e2e,
        "worker_alone": alone,
    }


def summarize(results: list[dict[str, Any]], rds: BenchRedis) -> dict[str, Any]:
    rows = []
    for r in results:
        cpu = r["end_to_end"]["cpu_us_per_event"]
        rows.append(
            {
                "receivers": r["receivers"],
                "workers": r["workers"],
                "events_per_s": r["end_to_end"]["events_per_s"],
                "accept_rate_per_s": r["end_to_end"]["accept_rate_per_s"],
                "worker_alone_events_per_s": (r["worker_alone"] or {}).get("events_per_s"),
                "cpu_ms_per_event": {
                    part: None if cpu[part] is None else round(cpu[part] / 1000, 3)
                    for part in (*PARTS, "total")
                },
                "other_processes_cpus": cpu["other_processes_cpus"],
            }
        )
    problems = [
        p
        for r in results
        for phase in ("end_to_end", "worker_alone")
        if r.get(phase)
        for p in r[phase]["problems"]
    ]
    return {
        "settings": {"cpus": os.cpu_count(), "redis": rds.origin},
        "rows": rows,
        "valid": not problems,
        "problems": problems,
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(summary: dict[str, Any]) -> None:
    s = summary["settings"]
    print(
        f"crmhub end to end by receivers (gunicorn processes) x workers (Celery processes); "
        f"{s['cpus']} CPUs; Redis: {s['redis']}"
    )
    head = (
        f"{'recv':>4} {'workers':>7} {'events/s':>9} {'accepted/s':>10} {'worker alone':>12}"
        + "".join(f"{p + ' ms':>10}" for p in (*PARTS, "total"))
        + f"{'others':>8}"
    )
    print(head)
    print("-" * len(head))
    for row in summary["rows"]:
        cpu = row["cpu_ms_per_event"]
        print(
            f"{row['receivers']:>4} {row['workers']:>7} {_fmt(row['events_per_s']):>9} "
            f"{_fmt(row['accept_rate_per_s']):>10} {_fmt(row['worker_alone_events_per_s']):>12}"
            + "".join(f"{_fmt(cpu[p], 3):>10}" for p in (*PARTS, "total"))
            + f"{_fmt(row['other_processes_cpus'], 2):>8}"
        )
    print(
        "CPU ms per event: CPU seconds of each part over the end-to-end run / events (web: the "
        "receivers; worker: the Celery workers and beat; others: CPUs that processes outside "
        "the run kept busy meanwhile)"
    )
    if not summary["valid"]:
        print("INVALID RUN (events went missing):")
        for problem in summary["problems"]:
            print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    opts, receivers, workers = parse_args(argv)
    return bench_main(
        "bench/scale.py",
        "crmhub-scale-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, opts, receivers, workers, ensure_wrk()),
        summarize=summarize,
        report=lambda summary, _results: print_report(summary),
    )


if __name__ == "__main__":
    sys.exit(main())
