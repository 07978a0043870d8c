"""One delivery's cost in a worker: crmhub's run_delivery against a bare PUT, in one process.

What is measured
    hub: `workers.delivery.run_delivery` for N accepted deliveries, one after another, in this
    process: claim in the ledger (Lua), map the event, PUT it through the http connector to the
    demo target (connectors/fakes/http.py), finish with its outcome (Lua). bare: the same PUT of
    the same fields to the same target with a keep-alive httpx client (what bench/pipeline_bare.py's
    task does), nothing else. Per delivery: this process's CPU (time.process_time), wall time,
    and for the hub the Redis server's CPU (INFO cpu). ratio = bare CPU / hub CPU: the share of
    a bare PUT's cost that a delivery with its ledger bookkeeping amounts to.

    Celery is left out on purpose (both pipelines pay the same per message; bench/pipeline.py
    measures the whole), so this figure moves only with the hub's own delivery path, and it is
    much steadier than end-to-end events/s on a shared 2-core machine.

Run it from the repository root: `.venv/bin/python bench/delivery.py [--json] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import redis
from common import (
    BenchError,
    BenchRedis,
    add_common_flags,
    bench_main,
    delete_prefix,
    log,
    redis_cpu_seconds,
    running,
    wait_http,
)
from pipeline import CONNECTION, HUB_CONFIG, OBJECT, start_target
from receiver import SECRET_ENV, SOURCE, body_parts

from app.runtime import build_hub
from core.intake import build_events
from core.settings import Settings
from workers.delivery import run_delivery
from workers.runtime import WorkerRuntime

WARMUP = 50


@dataclass(frozen=True)
class Run:
    round: int
    name: str  # hub | bare
    deliveries: int
    cpu_us: float  # this process, per delivery
    wall_us: float
    redis_us: float | None  # the hub's Redis server, per delivery

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "name": self.name,
            "deliveries": self.deliveries,
            "cpu_us_per_delivery": round(self.cpu_us, 1),
            "wall_us_per_delivery": round(self.wall_us, 1),
            "redis_us_per_delivery": None if self.redis_us is None else round(self.redis_us, 1),
        }


def timed(
    name: str, round_no: int, count: int, step: Callable[[int], None], client: redis.Redis | None
) -> Run:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    redis0 = redis_cpu_seconds(client) if client else None
    for i in range(count):
        step(i)
    redis1 = redis_cpu_seconds(client) if client else None
    per = 1e6 / count
    return Run(
        round_no,
        name,
        count,
        (time.process_time() - cpu0) * per,
        (time.perf_counter() - wall0) * per,
        None if redis0 is None or redis1 is None else (redis1 - redis0) * per,
    )


def bench(opts: argparse.Namespace, tmp: Path, rds: BenchRedis) -> list[Run]:
    prefix = f"crmhub-delivery-{os.getpid()}-{secrets.token_hex(3)}"
    target_service, target_port = start_target(tmp)
    target_url = f"http://127.0.0.1:{target_port}"
    config = tmp / "crmhub-delivery.yaml"
    config.write_text(
        HUB_CONFIG.format(
            source=SOURCE,
            secret_env=SECRET_ENV,
            connection=CONNECTION,
            target=target_url,
            object=OBJECT,
        ),
        encoding="utf-8",
    )
    settings = Settings.from_env(
        dict(
            os.environ,
            CRMHUB_CONFIG=str(config),
            CRMHUB_REDIS_URL=rds.url,
            CRMHUB_KEY_PREFIX=prefix,
            # one delivery's cost: each run_delivery writes its own only (no drain)
            CRMHUB_DRAIN_MAX="1",
            **{SECRET_ENV: "whsec_bench"},
        )
    )
    client = redis.Redis.from_url(rds.url)
    parts = body_parts("dlv", int(time.time()))
    numbers = iter(range(10**8))
    runs: list[Run] = []
    with running(target_service):
        wait_http(target_service, target_port, "/_control/health", expect=200)
        hub = build_hub(settings)
        worker = WorkerRuntime.build(settings)
        receiver = hub.receivers[SOURCE]
        bare = httpx.Client(base_url=target_url, timeout=10)

        def accept(count: int) -> list[str]:
            """`count` accepted events, one pending delivery each (the receiver's path)."""
            ids = []
            for _ in range(count):
                text = f"{next(numbers):09d}".join(parts)
                events = build_events(
                    receiver.source, receiver.mappings, {}, {}, text, json.loads(text), time.time()
                )
                hub.ledger.accept(events, time.time())
                ids.append(events[0].deliveries[0].id)
            return ids

        def deliver(ids: list[str]) -> Callable[[int], None]:
            def step(i: int) -> None:
                outcome = run_delivery(worker, ids[i])
                if outcome != "delivered":
                    raise BenchError(f"delivery {ids[i]} ended {outcome!r}, not delivered")

            return step

        def put(bodies: list[dict[str, Any]]) -> Callable[[int], None]:
            def step(i: int) -> None:
                customer = bodies[i]["data"]["object"]
                email = str(customer["email"]).strip().lower()
                fields = {
                    "email": email,
                    "name": customer.get("name"),
                    "stripe_customer_id": customer.get("id"),
                }
                bare.put(f"/{OBJECT}/{quote(email, safe='')}", json=fields).raise_for_status()

            return step

        try:
            # warm-up: imports, connections, script loads, caches
            warm_hub = deliver(accept(WARMUP))
            warm_bare = put([json.loads(f"{next(numbers):09d}".join(parts)) for _ in range(WARMUP)])
            for i in range(WARMUP):
                warm_hub(i)
                warm_bare(i)
            for round_no in range(1, opts.rounds + 1):
                ids = accept(opts.deliveries)
                log(f"round {round_no}: hub, {len(ids)} deliveries")
                runs.append(timed("hub", round_no, len(ids), deliver(ids), client))
                bodies = [
                    json.loads(f"{next(numbers):09d}".join(parts)) for _ in range(opts.deliveries)
                ]
                log(f"round {round_no}: bare, {len(bodies)} PUTs")
                runs.append(timed("bare", round_no, len(bodies), put(bodies), None))
        finally:
            bare.close()
            worker.close()
            log(f"deleted {delete_prefix(rds.url, prefix)} keys under {prefix}:")
            client.close()
    return runs


def summarize(runs: list[Run], rds: BenchRedis) -> dict[str, Any]:
    def median(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.name == name)

    hub_cpu, bare_cpu = median("hub", "cpu_us"), median("bare", "cpu_us")
    return {
        "valid": bool(runs),
        "redis": {"origin": rds.origin, "persistence": rds.persistence},
        "runs": [r.as_json() for r in runs],
        "hub_cpu_us_per_delivery": round(hub_cpu, 1),
        "bare_cpu_us_per_delivery": round(bare_cpu, 1),
        "hub_wall_us_per_delivery": round(median("hub", "wall_us"), 1),
        "bare_wall_us_per_delivery": round(median("bare", "wall_us"), 1),
        "hub_redis_us_per_delivery": round(median("hub", "redis_us"), 1),
        "ratio": round(bare_cpu / hub_cpu, 3),
    }


def report(summary: dict[str, Any], runs: list[Run]) -> None:
    print(
        f"run_delivery (hub) vs a bare PUT, one process, {runs[0].deliveries} deliveries per "
        f"run; Redis: {summary['redis']['origin']} ({summary['redis']['persistence']})\n"
    )
    print(f"{'round':>5}  {'name':<5} {'CPU us':>8} {'wall us':>8} {'Redis us':>9}")
    for r in runs:
        rds = "" if r.redis_us is None else f"{r.redis_us:9.0f}"
        print(f"{r.round:>5}  {r.name:<5} {r.cpu_us:8.0f} {r.wall_us:8.0f} {rds}")
    print(
        f"\nper delivery (medians): hub {summary['hub_cpu_us_per_delivery']:.0f} us CPU "
        f"(+ Redis {summary['hub_redis_us_per_delivery']:.0f} us), "
        f"bare {summary['bare_cpu_us_per_delivery']:.0f} us CPU"
    )
    print(f"ratio (bare CPU / hub CPU) = {summary['ratio']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A worker's cost per delivery (claim, map, PUT, finish) against a bare "
        "PUT of the same fields, in one process; prints CPU and wall time per "
        "delivery and the ratio bare / hub."
    )
    parser.add_argument("--deliveries", type=int, default=2000, help="per run (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="hub/bare pairs (3)")
    add_common_flags(parser)
    opts = parser.parse_args(argv)
    if opts.deliveries < 1 or opts.rounds < 1:
        parser.error("--deliveries and --rounds must be positive")
    return bench_main(
        "bench/delivery.py",
        "crmhub-delivery-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: lambda tmp, rds: bench(opts, tmp, rds),
        summarize=summarize,
        report=report,
    )


if __name__ == "__main__":
    sys.exit(main())
