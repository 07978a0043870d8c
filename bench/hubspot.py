"""HubSpot drain: a backlog of N events delivered to the fake HubSpot, batching on and off.

What is measured
    N (`--events`, 10,000) Stripe `customer.created` events, each its own customer (distinct
    email, so distinct record key and contact), are recorded while no worker runs; then the
    hub's Celery worker (`celery -A workers.celery_app worker`, prefork, `--concurrency`
    CRMHUB_WORKER_CONCURRENCY, default 2, as tests/processes.py `Part` runs it) drains them
    into the fake HubSpot (connectors/fakes/hubspot/) through connectors/hubspot.py. Twice in
    one invocation:

    batching on   the connection as configured by default (batch upsert, up to 100 records
                  per request: the worker claims a delivery, then up to batch_size - 1 more
                  waiting deliveries of the same connection and object, Ledger.claim_batch)
    batching off  the same with `options: {batch_size: 1}` (one record per request)

    Per mode: events/s = N / (first claim -> last delivered), both taken from the ledger
    (the deliveries' `first_attempt_at`, the connection's `last.success_at`); HubSpot API
    calls per event = the fake's `api_calls` / N (target with batching: <= 0.05). Alongside:
    the time from starting the worker until the ledger counted N delivered (polled every
    0.2 s) and until the Celery queue was empty, how many tasks ran, how many batches
    (attempts share their start time within a batch) and their sizes, the tasks that found
    their delivery already taken ("skips": messages of deliveries that went out in another's
    batch before it could withdraw them), the messages batches withdrew, and the CPU per event
    of the worker, Redis and the fake.

Method
    The backlog is recorded through the hub's own code, as the receiver does it minus the
    signature check: app.runtime.build_hub (configuration, ledger, receivers), then
    core.intake.build_events for each parsed 1 KB event (bench/receiver.py's body) and
    Ledger.record in chunks of 200, which records each event and its delivery and publishes
    its Celery message in one Lua call. The mapping is the demo's
    (examples/crmhub.yaml `stripe-customer-to-hubspot-contact`, `jobtitle` owned by the
    target, so a write reads first: a batch read per batch, a read per record unbatched); the
    connection authenticates with a bearer private-app token and has no `rate_limit`; the
    fake runs with `--ten-secondly 0` (no 429s). Each mode gets a fresh key prefix and a reset
    fake. The run is valid when every event was delivered, the fake holds N contacts, it saw
    no schema violation and there is no dead letter; otherwise exit status 1 (2: could not
    set up; 130: interrupted). Everything started is stopped and every Redis key of the run
    deleted, on success, error or Ctrl-C alike.

Run it from the repository root: `.venv/bin/python bench/hubspot.py [--events N] [--json]`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from common import (
    REPO,
    BenchError,
    BenchRedis,
    Service,
    add_common_flags,
    bench_main,
    delete_prefix,
    group_cpu_seconds,
    hub_env,
    log,
    machine_busy_seconds,
    process_cpu_seconds,
    redis_cpu_seconds,
    running,
)
from receiver import DIGITS, body_parts

from app.runtime import build_hub
from core.intake import build_events, stored_headers
from core.ledger.keys import LedgerKeys
from core.ledger.model import NewEvent
from core.ledger.views import decode
from core.settings import Settings

TARGET_CALLS_PER_EVENT = 0.05
SOURCE = "stripe"
SECRET_ENV = "CRMHUB_BENCH_STRIPE_SECRET"
TOKEN_ENV = "HUBSPOT_TOKEN"
CONNECTION = "hubspot"
OBJECT = "contacts"
RECORD_CHUNK = 200
POLL_SECONDS = 0.2
READ_CHUNK = 1000
LISTENING = re.compile(r"fake hubspot listening on http://[\d.]+:(\d+)")
TERMINAL = ("delivered", "dead", "superseded", "discarded")

HUB_CONFIG = """\
# written by bench/hubspot.py: Stripe customers -> HubSpot contacts, the demo's mapping
# (examples/crmhub.yaml), against the fake HubSpot with a private-app token, no rate_limit.
sources:
  {source}:
    verify: {{scheme: stripe, secret_env: {secret_env}}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: hubspot
    base_url: {base_url}
    auth: {{type: bearer, token_env: {token_env}}}
{options}mappings:
  stripe-customer-to-hubspot-contact:
    source: {source}
    when: {{event_type: [customer.created, customer.updated]}}
    connection: {connection}
    object: {object}
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name]}}
      phone: {{from: data.object.phone, transform: [{{e164: {{region: US}}}}]}}
      jobtitle: {{from: data.object.metadata.title, owner: target}}
"""


@dataclass(frozen=True)
class Options:
    events: int
    batch_size: int | None  # batching on: None = the connector's default (100)
    concurrency: int
    stall_timeout: float
    embedded_redis: bool
    json: bool


@dataclass(frozen=True)
class Mode:
    name: str  # "batching on" | "batching off"
    key: str  # on | off
    batch_size: int | None  # None: not set (the connector's default)


# --- the fake HubSpot -----------------------------------------------------------------------


class FakeHubSpot:
    """The fake HubSpot (connectors/fakes/hubspot/) as a Service; its port is read from the
    line it prints."""

    def __init__(self, tmp: Path, token: str) -> None:
        self.service = Service(
            name="fake hubspot",
            cwd=REPO,
            env=os.environ,
            log_path=tmp / "fake-hubspot.log",
            args=[
                sys.executable,
                "-m",
                "connectors.fakes.hubspot",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--private-app-token",
                token,
                "--ten-secondly",
                "0",
            ],
        )
        self.url = ""
        self.http: httpx.Client | None = None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.alive():
                raise BenchError(
                    "the fake HubSpot exited at start; its log ends with:\n"
                    f"{self.service.log_tail()}"
                )
            match = LISTENING.search(self.service.log_tail(5))
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                self.http = httpx.Client(base_url=self.url, timeout=60)
                if self.get("/_control/health").get("ok"):
                    return
            time.sleep(0.1)
        raise BenchError(
            f"the fake HubSpot did not start within {timeout} s; its log ends "
            f"with:\n{self.service.log_tail()}"
        )

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        assert self.http is not None
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return dict(response.json())

    def reset(self) -> None:
        assert self.http is not None
        self.http.post("/_control/reset").raise_for_status()

    def call_times(self) -> tuple[float | None, float | None]:
        """The fake's clock at its first and last logged API request."""
        first = self.get("/_control/log", since=0, limit=1)
        last_seq = int(first["last_seq"])
        last = self.get("/_control/log", since=max(last_seq - 1, 0), limit=1)
        t0 = float(first["entries"][0]["time"]) if first["entries"] else None
        t1 = float(last["entries"][-1]["time"]) if last["entries"] else None
        return t0, t1

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


# --- the backlog ----------------------------------------------------------------------------


def record_backlog(env: dict[str, str], parts: list[str], count: int) -> list[str]:
    """Record `count` events through the hub's intake and ledger code, in chunks, as the
    receiver records them (no signature check); returns the delivery ids."""
    hub = build_hub(Settings.from_env(env))
    receiver = hub.receivers[SOURCE]
    stored = stored_headers([("Content-Type", "application/json")], receiver.redacted_headers)
    headers = {"Content-Type": "application/json"}
    delivery_ids: list[str] = []
    started = time.monotonic()
    try:
        for first in range(0, count, RECORD_CHUNK):
            now = time.time()
            events: list[NewEvent] = []
            for number in range(first, min(first + RECORD_CHUNK, count)):
                text = f"{number:0{DIGITS}d}".join(parts)
                events += build_events(
                    receiver.source, receiver.mappings, headers, stored, text, json.loads(text), now
                )
            results = hub.ledger.accept(events, now)
            bad = [r for r in results if r.duplicate or r.deliveries != 1]
            if bad:
                raise BenchError(
                    f"recording the backlog: {len(bad)} events were not recorded "
                    f"with one delivery each (first: {bad[0].as_json()})"
                )
            delivery_ids += [d.id for ev in events for d in ev.deliveries]
    finally:
        hub.ledger.redis.close()
    elapsed = time.monotonic() - started
    log(
        f"  recorded {count} events in {elapsed:.1f} s ({count / elapsed:.0f}/s, chunks of "
        f"{RECORD_CHUNK})"
    )
    return delivery_ids


# --- reading the ledger after a drain -------------------------------------------------------


@dataclass(frozen=True)
class LedgerFacts:
    first_claim: float | None  # earliest first_attempt_at (s)
    last_delivered: float | None  # the connection's last success_at (s)
    attempts: int  # attempts recorded, all deliveries
    batches: int  # distinct (start, duration) of attempts: claiming tasks
    batch_sizes: list[int]
    attempt_ms_total: float  # sum over batches of the attempt's duration


def ledger_facts(client: redis.Redis, prefix: str, ids: list[str]) -> LedgerFacts:
    first: list[float] = []
    by_start: Counter[tuple[float, float]] = Counter()
    duration: dict[tuple[float, float], float] = {}
    attempts = 0
    keys = LedgerKeys(prefix)
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        pipe = client.pipeline(transaction=False)
        for delivery_id in chunk:
            pipe.hget(keys.delivery(delivery_id), "first_attempt_at")
            pipe.lrange(keys.attempts(delivery_id), 0, -1)
        out = pipe.execute()
        for at, history in zip(out[0::2], out[1::2], strict=True):
            if at:
                first.append(float(at) / 1000)
            for raw in history:
                entry = json.loads(raw)
                if "duration_ms" not in entry:  # lease_expired notes from the sweeper
                    continue
                attempts += 1
                # the deliveries of one batch share its start and its duration
                batch = (float(entry["at"]), float(entry["duration_ms"]))
                by_start[batch] += 1
                duration[batch] = batch[1]
    success = client.hget(keys.last(CONNECTION), "success_at")
    return LedgerFacts(
        first_claim=min(first) if first else None,
        last_delivered=float(success) / 1000 if success else None,
        attempts=attempts,
        batches=len(by_start),
        batch_sizes=sorted(by_start.values()),
        attempt_ms_total=sum(duration.values()),
    )


def counts(client: redis.Redis, prefix: str) -> dict[str, int]:
    raw = client.hgetall(LedgerKeys(prefix).counts(CONNECTION))
    return {k: int(v) for k, v in decode(raw).items()}


def queue_depth(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """(messages waiting in the Celery queue, messages taken but not yet acknowledged)."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(f"{prefix}:q:{prefix}.deliveries")
    pipe.hlen(f"{prefix}:q:unacked")
    waiting, unacked = pipe.execute()
    return int(waiting), int(unacked)


# --- one mode -------------------------------------------------------------------------------


def worker_command(prefix: str, concurrency: int) -> list[str]:
    """tests/processes.py `Part` "worker", as the Procfile runs it."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--loglevel",
        "WARNING",
        "--concurrency",
        str(concurrency),
        "--queues",
        f"{prefix}.deliveries,{prefix}.control",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(b - a, 0.0)


def redis_commands(client: redis.Redis) -> int | None:
    try:
        return int(client.info("stats")["total_commands_processed"])
    except (redis.RedisError, KeyError, ValueError):
        return None


@dataclass(frozen=True)
class CpuSnap:
    at: float
    worker: float | None  # the worker's process group: main process + pool
    worker_main: float | None  # its main process (consumer: fetches, dispatches, acks)
    redis: float | None
    redis_commands: int | None
    fake: float | None
    machine: float | None


def cpu_snap(worker_pid: int, fake_pid: int, client: redis.Redis) -> CpuSnap:
    return CpuSnap(
        at=time.monotonic(),
        worker=group_cpu_seconds(worker_pid),
        worker_main=process_cpu_seconds(worker_pid),
        redis=redis_cpu_seconds(client),
        redis_commands=redis_commands(client),
        fake=group_cpu_seconds(fake_pid),
        machine=machine_busy_seconds(),
    )


def cpu_per_event(a: CpuSnap, b: CpuSnap, events: int) -> dict[str, float | None]:
    """µs of CPU per event of each part between two snapshots, Redis commands per event,
    and how many CPUs everything else kept busy meanwhile."""
    n = max(events, 1)

    def us(x: float | None, y: float | None) -> float | None:
        d = _delta(x, y)
        return None if d is None else round(d / n * 1e6, 1)

    ours = sum(
        _delta(x, y) or 0.0 for x, y in ((a.worker, b.worker), (a.redis, b.redis), (a.fake, b.fake))
    )
    machine, wall = _delta(a.machine, b.machine), b.at - a.at
    commands = (
        None
        if a.redis_commands is None or b.redis_commands is None
        else round((b.redis_commands - a.redis_commands) / n, 1)
    )
    return {
        "worker": us(a.worker, b.worker),
        "worker_main_process": us(a.worker_main, b.worker_main),
        "redis": us(a.redis, b.redis),
        "fake": us(a.fake, b.fake),
        "redis_commands_per_event": commands,
        "other_processes_cpus": None
        if machine is None or wall <= 0
        else round(max(machine - ours, 0.0) / wall, 2),
    }


def run_mode(
    mode: Mode,
    opts: Options,
    tmp: Path,
    rds: BenchRedis,
    fake: FakeHubSpot,
    client: redis.Redis,
    parts: list[str],
    secret: str,
    token: str,
    prefixes: list[str],
) -> dict[str, Any]:
    n = opts.events
    prefix = f"crmhub-bench-hubspot-{os.getpid()}-{secrets.token_hex(3)}-{mode.key}"
    prefixes.append(prefix)
    options = "" if mode.batch_size is None else f"    options: {{batch_size: {mode.batch_size}}}\n"
    config = tmp / f"crmhub-hubspot-{mode.key}.yaml"
    config.write_text(
        HUB_CONFIG.format(
            source=SOURCE,
            secret_env=SECRET_ENV,
            connection=CONNECTION,
            base_url=fake.url,
            token_env=TOKEN_ENV,
            object=OBJECT,
            options=options,
        ),
        encoding="utf-8",
    )
    env = hub_env(
        rds, prefix, tmp, config, opts.concurrency, **{SECRET_ENV: secret, TOKEN_ENV: token}
    )
    fake.reset()
    log(f"{mode.name}: key prefix {prefix}")
    ids = record_backlog(env, parts, n)
    before_counts = counts(client, prefix)
    waiting, _ = queue_depth(client, prefix)
    if before_counts.get("pending") != n or waiting != n:
        raise BenchError(
            f"{mode.name}: expected {n} pending deliveries and {n} queued "
            f"messages before the drain, found {before_counts} and {waiting}"
        )

    worker = Service(
        name=f"celery worker ({mode.name})",
        args=worker_command(prefix, opts.concurrency),
        env=env,
        cwd=REPO,
        log_path=tmp / f"worker-{mode.key}.log",
    )
    problems: list[str] = []
    fake_pid = fake.service.proc.pid if fake.service.proc else 0
    spawned = time.time()
    done_at: float | None = None
    queue_empty_at: float | None = None
    now_counts: dict[str, int] = {}
    base: CpuSnap | None = None  # taken when the first claim is seen (after boot)
    finished_at_base = 0
    with running(worker):
        assert worker.proc is not None
        worker_pid = worker.proc.pid
        last_progress, last_done = time.monotonic(), -1
        while True:
            time.sleep(POLL_SECONDS)
            if not worker.alive():
                raise BenchError(f"{worker.name} died; its log ends with:\n{worker.log_tail()}")
            now_counts = counts(client, prefix)
            finished = sum(now_counts.get(state, 0) for state in TERMINAL)
            if base is None and now_counts.get("pending", 0) < n:
                base = cpu_snap(worker_pid, fake_pid, client)
                finished_at_base = finished
            if done_at is None and finished >= n:
                done_at = time.time()
                log(
                    f"  ledger: {now_counts.get('delivered', 0)} delivered after "
                    f"{done_at - spawned:.1f} s from the worker's start"
                )
            if done_at is not None:
                waiting, unacked = queue_depth(client, prefix)
                if waiting == 0 and unacked == 0:
                    queue_empty_at = time.time()
                    break
            if finished != last_done:
                last_progress, last_done = time.monotonic(), finished
            elif time.monotonic() - last_progress > opts.stall_timeout:
                waiting, unacked = queue_depth(client, prefix)
                what = "the queue did not empty" if done_at else "no delivery finished"
                problems.append(
                    f"{mode.name}: {what} for {opts.stall_timeout:g} s "
                    f"(counts {now_counts}, {waiting} queued, {unacked} unacked "
                    "messages)"
                )
                break
        end = cpu_snap(worker_pid, fake_pid, client)
    facts = ledger_facts(client, prefix, ids)
    stats = fake.get("/_control/stats")
    violations = fake.get("/_control/violations")
    t_first_call, t_last_call = fake.call_times()
    contacts = len(fake.get("/_control/records", object=OBJECT)["records"])
    keys = LedgerKeys(prefix)
    published = int(client.get(keys.published()) or 0)
    withdrawn = int(client.get(keys.withdrawn()) or 0)  # taken back by batches
    waiting, unacked = queue_depth(client, prefix)
    dead = int(client.zcard(keys.dead_index()))
    delete_prefix(rds.url, prefix)

    delivered = now_counts.get("delivered", 0)
    seconds = _delta(facts.first_claim, facts.last_delivered)
    api_calls = int(stats["api_calls"])
    tasks = published - withdrawn - waiting - unacked
    cpu = cpu_per_event(base or end, end, n - finished_at_base)
    if delivered != n:
        problems.append(f"{mode.name}: {delivered} of {n} delivered (counts {now_counts})")
    if contacts != n:
        problems.append(f"{mode.name}: the fake holds {contacts} contacts, expected {n}")
    if int(violations["count"]):
        problems.append(
            f"{mode.name}: the fake recorded {violations['count']} schema "
            f"violations (first: {violations['violations'][:1]})"
        )
    if dead or now_counts.get("dead", 0):
        problems.append(f"{mode.name}: {dead} dead letters")
    result: dict[str, Any] = {
        "mode": mode.name,
        "batch_size": mode.batch_size or "default (100)",
        "events": n,
        "delivered": delivered,
        "seconds": None if seconds is None else round(seconds, 3),
        "events_per_s": round(n / seconds, 1) if seconds else None,
        "api_calls": api_calls,
        "calls_per_event": round(api_calls / n, 4),
        "api_calls_by_endpoint": stats.get("by_endpoint"),
        "statuses": stats.get("by_status"),
        "from_worker_start_s": round(done_at - spawned, 3) if done_at else None,
        "queue_empty_after_worker_start_s": round(queue_empty_at - spawned, 3)
        if queue_empty_at
        else None,
        "fake_first_to_last_call_s": round(t_last_call - t_first_call, 3)
        if t_first_call is not None and t_last_call is not None
        else None,
        "first_claim_after_worker_start_s": round(facts.first_claim - spawned, 3)
        if facts.first_claim
        else None,
        "messages_published": published,
        "messages_withdrawn": withdrawn,
        "tasks_run": tasks,
        "claiming_tasks": facts.batches,
        "skip_tasks": tasks - facts.batches,
        "attempts": facts.attempts,
        "batch_size_mean": round(facts.attempts / facts.batches, 1) if facts.batches else None,
        "batch_size_min": facts.batch_sizes[0] if facts.batch_sizes else None,
        "batch_size_median": statistics.median(facts.batch_sizes) if facts.batch_sizes else None,
        "batch_size_max": facts.batch_sizes[-1] if facts.batch_sizes else None,
        "attempt_time_s": round(facts.attempt_ms_total / 1000, 3),
        "attempt_share_of_worker_time": round(
            facts.attempt_ms_total / 1000 / (seconds * opts.concurrency), 3
        )
        if seconds
        else None,
        "cpu_us_per_event": cpu,
        "contacts_at_fake": contacts,
        "violations": int(violations["count"]),
        "dead_letters": dead,
        "problems": problems,
    }
    log(
        f"  {result['events_per_s']} events/s ({result['seconds']} s first claim -> last "
        f"delivered); {api_calls} API calls ({result['calls_per_event']}/event); "
        f"{tasks} tasks: {facts.batches} claimed (mean batch {result['batch_size_mean']}), "
        f"{result['skip_tasks']} skips; queue empty {result['queue_empty_after_worker_start_s']}"
        f" s after the worker's start; CPU us/event {result['cpu_us_per_event']}"
    )
    return result


# --- the bench ------------------------------------------------------------------------------


@contextlib.contextmanager
def cleanup(url: str, prefixes: list[str]) -> Iterator[None]:
    try:
        yield
    finally:
        for prefix in prefixes:
            with contextlib.suppress(redis.RedisError):
                deleted = delete_prefix(url, prefix)
                if deleted:
                    log(f"deleted {deleted} keys under {prefix}:")


def bench(opts: Options, tmp: Path, rds: BenchRedis) -> list[dict[str, Any]]:
    secret = "whsec_bench_" + secrets.token_hex(16)
    token = "pat-bench-" + secrets.token_hex(16)
    parts = body_parts(secrets.token_hex(3), int(time.time()))
    (tmp / "var").mkdir(exist_ok=True)
    fake = FakeHubSpot(tmp, token)
    client = redis.Redis.from_url(rds.url)
    prefixes: list[str] = []
    modes = (Mode("batching on", "on", opts.batch_size), Mode("batching off", "off", 1))
    log(f"Redis: {rds.origin} ({rds.persistence}); logs in {tmp}")
    try:
        with cleanup(rds.url, prefixes), running(fake.service):
            fake.wait_ready()
            log(f"fake HubSpot on {fake.url}")
            return [
                run_mode(mode, opts, tmp, rds, fake, client, parts, secret, token, prefixes)
                for mode in modes
            ]
    finally:
        fake.close()
        client.close()


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Drain a backlog of events into the fake HubSpot with batching on and off:"
        " events/s and HubSpot API calls per event."
    )
    parser.add_argument(
        "--events",
        type=int,
        default=10000,
        help="events in the backlog, each its own contact (default 10000)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="options.batch_size for the batching-on run (default: not set, the connector's 100)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=60.0,
        help="give up after this many seconds without a delivery (60)",
    )
    add_common_flags(
        parser,
        redis_help="start a redis-server of our own even if one is "
        "reachable (its CPU and command counts are then the "
        "bench's alone)",
    )
    ns = parser.parse_args(argv)
    if ns.events < 1 or (ns.batch_size is not None and ns.batch_size < 1):
        parser.error("--events and --batch-size must be positive")
    return Options(
        events=ns.events,
        batch_size=ns.batch_size,
        concurrency=int(os.environ.get("CRMHUB_WORKER_CONCURRENCY") or 2),
        stall_timeout=ns.stall_timeout,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summarize(opts: Options, results: list[dict[str, Any]], rds: BenchRedis) -> dict[str, Any]:
    on = results[0]
    ratio = on["calls_per_event"]
    problems = [p for r in results for p in r["problems"]]
    return {
        "settings": {
            "events": opts.events,
            "worker_concurrency": opts.concurrency,
            "batch_size_on": opts.batch_size or "default (100)",
            "cpus": os.cpu_count(),
            "redis": rds.origin,
            "redis_persistence": rds.persistence,
        },
        "runs": results,
        "calls_per_event_batching": ratio,
        "target_calls_per_event": TARGET_CALLS_PER_EVENT,
        "verdict": "PASS" if ratio <= TARGET_CALLS_PER_EVENT else "BELOW TARGET",
        "valid": not problems,
        "problems": problems,
    }


def print_report(summary: dict[str, Any]) -> None:
    s = summary["settings"]
    print(
        f"crmhub -> fake HubSpot: a backlog of {s['events']} Stripe customer.created events "
        f"(each its own contact) drained by celery prefork --concurrency "
        f"{s['worker_concurrency']}; Redis: {s['redis']}; {s['cpus']} CPUs"
    )
    print()
    print(
        f"{'mode':<14}{'events':>8}{'seconds':>10}{'events/s':>10}{'api_calls':>11}"
        f"{'calls/event':>13}"
    )
    for r in summary["runs"]:
        print(
            f"{r['mode']:<14}{r['events']:>8}{_fmt(r['seconds'], 2):>10}"
            f"{_fmt(r['events_per_s']):>10}{r['api_calls']:>11}{r['calls_per_event']:>13.3f}"
        )
    print()
    print("seconds: first claim -> last delivered (ledger times). Details:")
    for r in summary["runs"]:
        cpu = r["cpu_us_per_event"]
        print(
            f"  {r['mode']}: N delivered {_fmt(r['from_worker_start_s'], 1)} s after the "
            f"worker's start (first claim at {_fmt(r['first_claim_after_worker_start_s'], 1)}"
            f" s), queue empty at {_fmt(r['queue_empty_after_worker_start_s'], 1)} s; "
            f"calls {r['api_calls_by_endpoint']}"
        )
        print(
            f"    {r['tasks_run']} tasks: {r['claiming_tasks']} claimed a delivery (batch "
            f"size mean {_fmt(r['batch_size_mean'], 1)}, min {r['batch_size_min']}, max "
            f"{r['batch_size_max']}), {r['skip_tasks']} skipped one already taken, "
            f"{r['messages_withdrawn']} messages withdrawn by batches; "
            f"attempts took {_fmt(r['attempt_time_s'], 1)} s in all, "
            f"{_fmt((r['attempt_share_of_worker_time'] or 0) * 100)}% of the pool's time"
        )
        print(
            f"    per event (after the worker's boot): CPU worker {_fmt(cpu['worker'])} us "
            f"(main process {_fmt(cpu['worker_main_process'])}), Redis "
            f"{_fmt(cpu['redis'])} us ({_fmt(cpu['redis_commands_per_event'], 1)} commands), "
            f"fake {_fmt(cpu['fake'])} us; other processes kept "
            f"{_fmt(cpu['other_processes_cpus'], 2)} CPUs busy"
        )
    print()
    print(
        f"HubSpot API calls per event with batching = "
        f"{summary['calls_per_event_batching']:.3f} (target <= "
        f"{TARGET_CALLS_PER_EVENT:.2f}): {summary['verdict']}"
    )
    if not summary["valid"]:
        print("INVALID RUN:")
        for problem in summary["problems"]:
            print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    return bench_main(
        "bench/hubspot.py",
        "crmhub-bench-hubspot-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, opts),
        summarize=functools.partial(summarize, opts),
        report=lambda summary, _results: print_report(summary),
    )


if __name__ == "__main__":
    sys.exit(main())
