"""What CRMHUB_REDIS_WAIT_REPLICAS=1 costs the receiver: bench/receiver.py's load against a
Redis primary with one replica, with and without the WAIT, alternated in one run.

What is measured
    A primary and a replica of our own (redis-server on loopback, the ledger's AOF settings),
    then per round bench/receiver.py's measurement (signed 1 KB Stripe webhooks under wrk,
    the bare Flask app first as its baseline, then the hub) twice: without the setting, and
    with `CRMHUB_REDIS_WAIT_REPLICAS=1` (each accept and a `WAIT 1 timeout` sent together,
    202 only once the replica has the event). The figure of merit is
    cost ratio = hub req/s with WAIT / hub req/s without (medians), beside each one's ratio
    against its bare baseline, and the p50/p99 latency of each. On one machine the replica's
    acknowledgement is a loopback hop (it acks every 1 s on its own, and at once for a WAIT);
    across hosts add one network round trip per accept batch.

Run it from the repository root: `.venv/bin/python bench/replicas.py [--rounds 2]`
(bench/receiver.py's flags apply: --duration, --connections, --workers...).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchError, BenchRedis, ensure_wrk, log
from receiver import Run, bench, parse_args

from core.embedded_redis import find_redis_server, free_port

WAIT_ENV = "CRMHUB_REDIS_WAIT_REPLICAS"


def start_redis(directory: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    directory.mkdir(parents=True)
    port = free_port()
    process = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
         str(directory), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--maxmemory-policy", "noeviction", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            return process, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise BenchError(f"redis-server on {port} did not start") from None
            time.sleep(0.05)


def hub_runs(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.name == "hub"]


def main(argv: list[str] | None = None) -> int:
    opts, _ = parse_args(argv)
    wrk = ensure_wrk()
    results: dict[str, list[Run]] = {"without": [], "with": []}
    bare: dict[str, list[Run]] = {"without": [], "with": []}
    rounds = opts.rounds
    single = type(opts)(**{**opts.__dict__, "rounds": 1})
    with tempfile.TemporaryDirectory(prefix="crmhub-replicas-") as tmp_name:
        tmp = Path(tmp_name)
        primary, port = start_redis(tmp / "primary")
        replica, replica_port = start_redis(tmp / "replica", "--replicaof", "127.0.0.1", str(port))
        try:
            client = redis.Redis(port=replica_port)
            while client.info("replication")["master_link_status"] != "up":
                time.sleep(0.1)
            rds = BenchRedis(
                url=f"redis://127.0.0.1:{port}/0",
                origin="a primary with one replica (loopback)",
                persistence="appendonly=yes appendfsync=everysec",
            )
            for round_no in range(1, rounds + 1):
                for mode in ("without", "with"):
                    log(f"round {round_no}/{rounds}: {mode} {WAIT_ENV}=1")
                    if mode == "with":
                        os.environ[WAIT_ENV] = "1"
                    else:
                        os.environ.pop(WAIT_ENV, None)
                    mode_tmp = tmp / f"r{round_no}-{mode}"
                    mode_tmp.mkdir()
                    runs = bench(single, wrk, mode_tmp, rds)
                    results[mode] += hub_runs(runs)
                    bare[mode] += [r for r in runs if r.name == "bare"]
        finally:
            for process in (replica, primary):
                process.kill()
                process.wait()

    def median(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r.result, attr) for r in runs)

    print(f"\nreceiver with and without {WAIT_ENV}=1 ({rounds} rounds, alternated)")
    print(
        f"{'':>10} {'hub req/s':>10} {'bare req/s':>11} {'vs bare':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for mode in ("without", "with"):
        hub_rps, bare_rps = median(results[mode], "rps"), median(bare[mode], "rps")
        print(
            f"{mode:>10} {hub_rps:>10.0f} {bare_rps:>10.0f} {hub_rps / bare_rps:>10.2f} "
            f"{median(results[mode], 'p50_ms'):>10.2f} {median(results[mode], 'p99_ms'):>10.2f}"
        )
    cost = median(results["with"], "rps") / median(results["without"], "rps")
    print(f"cost ratio (hub with WAIT / hub without): {cost:.2f}")
    cpu = {
        mode: [t for r in runs if (t := r.cpu.total_us) is not None]
        for mode, runs in results.items()
    }
    if cpu["with"] and cpu["without"]:
        # CPU per request moves much less with the machine's other load than req/s does
        without_us, with_us = statistics.median(cpu["without"]), statistics.median(cpu["with"])
        print(
            f"CPU per request (server + Redis + wrk): without {without_us:.0f} us, with "
            f"{with_us:.0f} us: CPU-bound ratio {without_us / with_us:.2f}"
        )
    problems = [p for mode in results.values() for r in mode for p in r.problems()]
    for problem in problems:
        print(f"invalid run: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
