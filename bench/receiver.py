"""Receiver throughput: crmhub's webhook receiver against a bare Flask app, same gunicorn.

What is measured
    `POST /webhooks/stripe` on the real receiver (`app.wsgi:app`): verify the Stripe
    signature, dedupe on the event id, record the event and its one delivery in Redis and
    LPUSH its Celery message (one Lua script call, core.ledger), answer 202. Against it, a
    bare Flask app whose `POST /webhooks/<source>` only reads the body and answers 202
    `{"ok": true}`. Both run under the identical gunicorn command line
    (`python -m gunicorn -c app/gunicorn_conf.py [flags] MODULE`, the same environment:
    CRMHUB_WEB_WORKERS / CRMHUB_WEB_THREADS) and get the identical load from wrk (threads,
    connections, duration, the same kind of request). The figure of merit is
    ratio = hub req/s / bare req/s (target >= 0.50): the share of a bare web stack's
    throughput the receiver keeps while doing the work that makes a 202 mean something.

Method
    Every request is a distinct, genuinely signed 1 KB `customer.created` event (its own id
    and its own customer email, so dedupe records each one and each delivery is the head of
    its record's queue, which publishes one Celery message per event). wrk cannot compute
    HMACs, so before each run the bench signs N events with core.signatures (Stripe scheme,
    `t` = now, well within the 5-minute tolerance) and writes their signatures to a file; a
    generated wrk Lua script holds the body once (split around the event number) and its
    `request()` walks through the file, thread by thread, never reusing one. N covers
    `--max-rate` req/s for the whole run; if they ran out the script sends 404-bound
    requests instead of duplicates, which makes the run invalid. Statuses are counted in the
    script's `response()` and summed in `done()`; a run is invalid (exit 1) when non-2xx
    responses plus socket errors exceed 1% of the requests, or duplicates (200) do.

    Per round: the bare app then the hub, each with a `--warmup` run (not reported) and a
    `--duration` run (reported). Both servers stay up for the whole bench. Redis: the URL in
    CRMHUB_REDIS_URL, else 127.0.0.1:6379 if it answers, else (or with --embedded-redis) a
    redis-server of our own with the ledger's AOF settings. Keys live under a unique
    CRMHUB_KEY_PREFIX and are deleted after every hub run and at the end; no worker runs, so
    the Celery messages just accumulate until then.

    The host is small (2 cores) and may be shared, so each measured run also reports CPU time
    per request (the server's gunicorn processes + Redis, from INFO cpu, + wrk) and how many
    CPUs other processes kept busy meanwhile; bare CPU/req ÷ hub CPU/req estimates the ratio
    a CPU-bound machine would show, and moves much less with other load than req/s does.
    (Redis CPU counts, for the hub, all of that server's clients: on a shared Redis use
    --embedded-redis for figures of our own.)

Run it from the repository root: `.venv/bin/python bench/receiver.py [--json] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from common import (
    REPO,
    WRK_LUA_REPORT,
    BenchError,
    BenchRedis,
    CpuUse,
    Service,
    WrkResult,
    add_common_flags,
    bench_main,
    cpu_sample,
    delete_prefix,
    ensure_wrk,
    free_port,
    gunicorn_command,
    log,
    lua_body_parts,
    lua_long_string,
    lua_next_signed_request,
    run_wrk,
    running,
    wait_http,
)

from app import gunicorn_conf
from core.ledger.keys import LedgerKeys
from core.signatures import SignedRequest, VerifyOptions, get_scheme

TARGET_RATIO = 0.50
MAX_BAD_SHARE = 0.01  # non-2xx + socket errors (and duplicates) allowed per run
NOISY_OTHERS_CPUS = 0.2  # other processes busier than this: say the figures are noisy
BODY_BYTES = 1024
DIGITS = 9  # event numbers are zero-padded: every body is the same size
PLACEHOLDER = "#N#"
SOURCE = "stripe"
SECRET_ENV = "CRMHUB_BENCH_STRIPE_SECRET"
STRIPE_TOLERANCE_S = 300
CONNECTION = "bench-crm"

HUB_CONFIG = f"""\
# written by bench/receiver.py: one Stripe source whose customer.created events map to one
# http connection, so each event records one delivery and publishes one Celery message.
sources:
  {SOURCE}:
    verify: {{scheme: stripe, secret_env: {SECRET_ENV}}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {CONNECTION}:
    connector: http
    base_url: http://127.0.0.1:9/api
mappings:
  bench-customer-to-contact:
    source: {SOURCE}
    when: {{event_type: customer.created}}
    connection: {CONNECTION}
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      name: data.object.name
      stripe_customer_id: data.object.id
"""

BARE_APP = '''\
"""The baseline (written by bench/receiver.py): Flask under the same gunicorn, no work."""

from flask import Flask, jsonify, request

app = Flask("bare")


@app.post("/webhooks/<source>")
def receive(source):
    request.get_data()
    return jsonify({"ok": True}), 202
'''

BARE_MODULE = "bench_bare_app"


# --- the requests ---------------------------------------------------------------------------


def body_parts(tag: str, created: int) -> list[str]:
    """A 1 KB Stripe `customer.created` event, split around the event number."""

    def render(padding: str) -> str:
        event = {
            "id": f"evt_bench_{tag}_{PLACEHOLDER}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "type": "customer.created",
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": f"req_bench_{PLACEHOLDER}", "idempotency_key": None},
            "data": {
                "object": {
                    "id": f"cus_bench_{PLACEHOLDER}",
                    "object": "customer",
                    "email": f"user.{PLACEHOLDER}@bench.example.com",
                    "name": "Ada Lovelace",
                    "phone": "+14155550100",
                    "created": created,
                    "currency": "usd",
                    "balance": 0,
                    "delinquent": False,
                    "invoice_prefix": "BENCH01",
                    "description": "load-test customer written by bench/receiver.py",
                    "address": {
                        "line1": "1 Analytical Engine Way",
                        "city": "London",
                        "postal_code": "N1 9GU",
                        "country": "GB",
                    },
                    "preferred_locales": ["en"],
                    "tax_exempt": "none",
                    "metadata": {"title": "Engineer", "padding": padding},
                }
            },
        }
        return json.dumps(event, separators=(",", ":"))

    bare = render("")
    size = len(bare) + bare.count(PLACEHOLDER) * (DIGITS - len(PLACEHOLDER))
    if size > BODY_BYTES:
        raise BenchError(f"the event template is {size} bytes, over {BODY_BYTES}")
    return render("x" * (BODY_BYTES - size)).split(PLACEHOLDER)


@dataclass(frozen=True)
class RequestSet:
    """N signed events, numbered first..first+count-1, and the wrk script that sends them."""

    script: Path
    first: int
    count: int
    signed_at: float


def write_request_set(
    tmp: Path, name: str, parts: list[str], first: int, count: int, secret: str
) -> RequestSet:
    scheme = get_scheme("stripe")
    options = VerifyOptions(scheme="stripe")
    now = time.time()
    prefix = f"t={int(now)},v1="
    signatures: list[str] = []
    for number in range(first, first + count):
        body = f"{number:0{DIGITS}d}".join(parts).encode()
        header = scheme.sign(body=body, secret=secret, options=options, now=now)
        value = header["Stripe-Signature"]
        if not value.startswith(prefix) or len(value) != len(prefix) + 64:
            raise BenchError(f"unexpected Stripe-Signature format: {value!r}")
        signatures.append(value[len(prefix) :])
    # the same check the receiver makes, on the first event
    body = f"{first:0{DIGITS}d}".join(parts).encode()
    scheme.verify(
        SignedRequest(
            method="POST", url="", body=body, headers={"Stripe-Signature": prefix + signatures[0]}
        ),
        [secret],
        options,
        time.time(),
    )

    sig_file = tmp / f"{name}.sig"
    sig_file.write_text("".join(signatures), encoding="ascii")
    script = tmp / f"{name}.lua"
    script.write_text(wrk_script(parts, prefix, sig_file, first), encoding="utf-8")
    return RequestSet(script=script, first=first, count=count, signed_at=now)


def wrk_script(parts: list[str], sig_prefix: str, sig_file: Path, first: int) -> str:
    """The wrk script: body parts once, signatures read from `sig_file` (64 hex each)."""
    literals, body_expr = lua_body_parts(parts)
    return (
        textwrap.dedent("""\
        -- Generated by bench/receiver.py. Request k (k = cursor: args[1] + thread id, then
        -- + args[2] = the number of wrk threads each time) is event number {first} + k,
        -- signed with the k-th 64-hex signature in the file. Past the last one it sends
        -- requests to a path that answers 404, never a duplicate.
        local parts = {{
          {literals}
        }}
        local sig_prefix = "{sig_prefix}"
        local sig_file = {sig_file}
        local first = {first}
        local sigs, count, stride
        local headers = {{["Content-Type"] = "application/json"}}

        function init(args)
          stride = tonumber(args[2])
          local f = assert(io.open(sig_file, "rb"))
          sigs = f:read("*a")
          f:close()
          count = #sigs / 64
          cursor = tonumber(args[1]) + tid
        end

        function request()
          {next_request}
        end
        """).format(
            first=first,
            literals=literals,
            sig_prefix=sig_prefix,
            sig_file=lua_long_string(str(sig_file)),
            next_request=lua_next_signed_request(
                "/bench-requests-exhausted", digits=DIGITS, source=SOURCE, body_expr=body_expr
            ),
        )
        + WRK_LUA_REPORT
    )


# --- runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    round: int
    name: str  # bare | hub
    result: WrkResult
    warmup: WrkResult
    cpu: CpuUse
    recorded: dict[str, int] | None = None  # hub: what Redis holds after the run

    @property
    def duplicates(self) -> int:
        return self.result.statuses.get(200, 0)

    def problems(self) -> list[str]:
        r = self.result
        out = []
        allowed = MAX_BAD_SHARE * max(r.requests, 1)
        if r.non_2xx + r.errors > allowed:
            out.append(
                f"round {self.round} {self.name}: {r.non_2xx} non-2xx responses and "
                f"{r.errors} socket errors out of {r.requests} (limit 1%)"
            )
        if self.duplicates > allowed:
            out.append(
                f"round {self.round} {self.name}: {self.duplicates} answered 200 "
                "(duplicate): the events were not all distinct"
            )
        if r.exhausted or self.warmup.exhausted:
            out.append(
                f"round {self.round} {self.name}: the pre-generated requests ran out "
                f"({r.exhausted + self.warmup.exhausted} extra sent); raise --max-rate"
            )
        if r.requests == 0:
            out.append(f"round {self.round} {self.name}: no request completed")
        return out

    def as_json(self) -> dict[str, Any]:
        out = {
            "round": self.round,
            "name": self.name,
            **self.result.as_json(),
            "duplicates": self.duplicates,
            "cpu": self.cpu.as_json(),
            "warmup": {
                "requests": self.warmup.requests,
                "rps": round(self.warmup.rps, 1),
                "non_2xx": self.warmup.non_2xx,
            },
        }
        if self.recorded is not None:
            out["redis_after_run"] = self.recorded
        return out


def redis_counts(url: str, prefix: str) -> dict[str, int]:
    """What the hub recorded: events, deliveries pending, Celery messages queued."""
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=True)  # one consistent snapshot
        keys = LedgerKeys(prefix)
        pipe.zcard(keys.events())
        pipe.hget(keys.counts(CONNECTION), "pending")
        pipe.llen(f"{prefix}:q:{prefix}.deliveries")
        events, pending, messages = pipe.execute()
    finally:
        client.close()
    return {
        "events": int(events),
        "pending_deliveries": int(pending or 0),
        "celery_messages": int(messages),
    }


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    rounds: int
    connections: int
    wrk_threads: int
    max_rate: int
    pin_wrk: str | None
    gunicorn_flags: list[str]
    workers: int
    threads: int
    worker_class: str


def _effective_worker_class(requested: str | None, threads: int) -> str:
    cls = requested or gunicorn_conf.worker_class  # what app/gunicorn_conf.py sets
    if cls == "sync" and threads > 1:
        return "gthread"  # gunicorn upgrades sync to gthread when threads > 1
    return cls


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description="Load crmhub's webhook receiver and a bare Flask app under the same "
        "gunicorn settings with signed 1 KB webhooks (wrk); print req/s, p50/p99 "
        "and the ratio hub / bare."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=1, help="bare/hub pairs, alternated")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--max-rate",
        type=int,
        default=12000,
        help="req/s the pre-generated requests must cover (default 12000)",
    )
    parser.add_argument(
        "--pin-wrk",
        metavar="CPUS",
        default=None,
        help="run wrk under `taskset -c CPUS` (default: no pinning)",
    )
    parser.add_argument(
        "--worker-class",
        default=None,
        help="gunicorn -k for both apps (default: the config's gthread)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="CRMHUB_WEB_WORKERS for both apps (default: app/gunicorn_conf.py's)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CRMHUB_WEB_THREADS (gunicorn threads per worker) for both apps "
        "(default: app/gunicorn_conf.py's; 1 with --worker-class sync)",
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    for name in ("duration", "warmup", "rounds", "connections", "wrk_threads", "max_rate"):
        if getattr(ns, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if ns.warmup + ns.duration > STRIPE_TOLERANCE_S - 60:
        parser.error(
            "--warmup + --duration must stay under 240 s: the Stripe signatures are "
            "made just before each run and expire after 300 s"
        )
    if ns.connections < ns.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    # the hub's own defaults (app/gunicorn_conf.py, which reads the same environment)
    workers = ns.workers or gunicorn_conf.workers
    if ns.threads is not None:
        threads = ns.threads
    elif ns.worker_class == "sync":
        threads = 1
    else:
        threads = gunicorn_conf.threads
    flags = ["-k", ns.worker_class] if ns.worker_class else []
    options = Options(
        duration=ns.duration,
        warmup=ns.warmup,
        rounds=ns.rounds,
        connections=ns.connections,
        wrk_threads=ns.wrk_threads,
        max_rate=ns.max_rate,
        pin_wrk=ns.pin_wrk,
        gunicorn_flags=flags,
        workers=workers,
        threads=threads,
        worker_class=_effective_worker_class(ns.worker_class, threads),
    )
    return options, ns


def measure(
    opts: Options,
    wrk: str,
    port: int,
    requests: RequestSet,
    server_pgid: int,
    client: redis.Redis | None,
) -> tuple[WrkResult, WrkResult, CpuUse]:
    """Warm-up, then the measured run (with its CPU use), on fresh events from `requests`.
    `client`: the Redis whose CPU counts for this app (None: the app does not use Redis)."""
    url = f"http://127.0.0.1:{port}"

    def load(first: int, seconds: int) -> WrkResult:
        return run_wrk(
            wrk,
            url,
            requests.script,
            [str(first), str(opts.wrk_threads)],
            threads=opts.wrk_threads,
            connections=opts.connections,
            seconds=seconds,
            pin_cpus=opts.pin_wrk,
        )

    warm = (
        load(0, opts.warmup)
        if opts.warmup
        else WrkResult(0.0, 0, {}, {}, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
    )
    before = cpu_sample(server_pgid, client)
    result = load(warm.cursor, opts.duration)
    after = cpu_sample(server_pgid, client)
    if time.time() - requests.signed_at > STRIPE_TOLERANCE_S:
        raise BenchError("the run outlasted the Stripe signatures' 300 s tolerance")
    return warm, result, CpuUse.between(before, after, result.requests)


def bench(opts: Options, wrk: str, tmp: Path, rds: BenchRedis) -> list[Run]:
    tag = secrets.token_hex(3)
    prefix = f"crmhub-bench-{os.getpid()}-{tag}"
    secret = "whsec_bench_" + secrets.token_hex(16)
    config = tmp / "crmhub-bench.yaml"
    config.write_text(HUB_CONFIG, encoding="utf-8")
    (tmp / f"{BARE_MODULE}.py").write_text(BARE_APP, encoding="utf-8")
    parts = body_parts(tag, int(time.time()))
    per_run = opts.max_rate * (opts.warmup + opts.duration)

    base_env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": rds.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp / "var"),
        SECRET_ENV: secret,
        "CRMHUB_WEB_WORKERS": str(opts.workers),
        "CRMHUB_WEB_THREADS": str(opts.threads),
        "PYTHONPATH": os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH")) if p),
    }
    base_env.pop("CRMHUB_ACCESS_LOG", None)  # no access log for either app
    ports = {"bare": free_port(), "hub": free_port()}
    services = {
        name: Service(
            name=f"gunicorn ({name})",
            cwd=REPO,
            log_path=tmp / f"{name}.log",
            args=gunicorn_command(module, opts.gunicorn_flags),
            env={**base_env, "CRMHUB_PORT": str(ports[name])},
        )
        for name, module in (("bare", f"{BARE_MODULE}:app"), ("hub", "app.wsgi:app"))
    }
    log(
        f"gunicorn command (both): {' '.join(services['hub'].args[:-1])} <module>; "
        f"{opts.workers} workers, {opts.threads} threads each ({opts.worker_class})"
    )
    log(f"Redis: {rds.origin} ({rds.persistence}); key prefix {prefix}")

    runs: list[Run] = []
    next_number = 0
    client = redis.Redis.from_url(rds.url)
    try:
        with running(services["bare"]), running(services["hub"]):
            wait_http(services["bare"], ports["bare"], "/")
            wait_http(services["hub"], ports["hub"], "/readyz", expect=200)
            for round_no in range(1, opts.rounds + 1):
                for name in ("bare", "hub"):
                    if not services[name].alive():
                        raise BenchError(
                            f"{services[name].name} died; its log ends with:\n"
                            f"{services[name].log_tail()}"
                        )
                    log(f"round {round_no}/{opts.rounds}: {name}: signing {per_run} events")
                    requests = write_request_set(
                        tmp, f"r{round_no}-{name}", parts, next_number, per_run, secret
                    )
                    next_number += per_run
                    log(
                        f"round {round_no}/{opts.rounds}: {name}: {opts.warmup} s warm-up + "
                        f"{opts.duration} s measured"
                    )
                    pgid = services[name].proc.pid  # type: ignore[union-attr]
                    warm, result, cpu = measure(
                        opts, wrk, ports[name], requests, pgid, client if name == "hub" else None
                    )
                    recorded = None
                    if name == "hub":
                        recorded = redis_counts(rds.url, prefix)
                        log(
                            f"  Redis after the hub run: {recorded['events']} events, "
                            f"{recorded['pending_deliveries']} pending deliveries, "
                            f"{recorded['celery_messages']} Celery messages (warm-up + "
                            f"measured: {warm.ok_2xx + result.ok_2xx} 2xx answers)"
                        )
                        log(f"  deleted {delete_prefix(rds.url, prefix)} keys")
                    runs.append(Run(round_no, name, result, warm, cpu, recorded))
                    log(
                        f"  {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, statuses {result.statuses}, "
                        f"CPU {cpu.as_json()}"
                    )
    finally:
        client.close()
        delete_prefix(rds.url, prefix)
    return runs


# --- report ---------------------------------------------------------------------------------


def summarize(opts: Options, runs: list[Run], rds: BenchRedis) -> dict[str, Any]:
    bare = [r.result.rps for r in runs if r.name == "bare"]
    hub = [r.result.rps for r in runs if r.name == "hub"]
    ratio = statistics.median(hub) / statistics.median(bare) if bare and hub else 0.0
    problems = [p for r in runs for p in r.problems()]
    cpu = {
        name: [t for r in runs if r.name == name and (t := r.cpu.total_us) is not None]
        for name in ("bare", "hub")
    }
    cpu_median = {name: round(statistics.median(v), 3) if v else None for name, v in cpu.items()}
    cpu_ratio = None
    if cpu_median["bare"] and cpu_median["hub"]:
        cpu_ratio = round(cpu_median["bare"] / cpu_median["hub"], 3)
    others = [o for r in runs if (o := r.cpu.others_cores) is not None]
    return {
        "settings": {
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "rounds": opts.rounds,
            "connections": opts.connections,
            "wrk_threads": opts.wrk_threads,
            "wrk_pinned_cpus": opts.pin_wrk,
            "gunicorn_flags": opts.gunicorn_flags,
            "gunicorn_conf": "app/gunicorn_conf.py",
            "workers": opts.workers,
            "threads": opts.threads,
            "worker_class": opts.worker_class,
            "body_bytes": BODY_BYTES,
            "scheme": "stripe",
            "cpus": os.cpu_count(),
            "redis": rds.origin,
            "redis_persistence": rds.persistence,
        },
        "runs": [r.as_json() for r in runs],
        "bare_rps_median": round(statistics.median(bare), 1) if bare else 0.0,
        "hub_rps_median": round(statistics.median(hub), 1) if hub else 0.0,
        "ratio": round(ratio, 3),
        "cpu_us_per_request_median": cpu_median,
        "cpu_bound_ratio_estimate": cpu_ratio,
        "other_processes_cpus_max": round(max(others), 2) if others else None,
        "round_ratios": [round(h / b, 3) if b else 0.0 for b, h in zip(bare, hub, strict=True)],
        "target": TARGET_RATIO,
        "verdict": "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET",
        "valid": not problems,
        "problems": problems,
    }


def print_report(summary: dict[str, Any], runs: list[Run]) -> None:
    s = summary["settings"]
    pin = (
        f"wrk pinned to CPU {s['wrk_pinned_cpus']} (taskset)"
        if s["wrk_pinned_cpus"]
        else "no CPU pinning"
    )
    print(
        f"crmhub receiver vs bare Flask: gunicorn -c {s['gunicorn_conf']} "
        f"{' '.join(s['gunicorn_flags'])}".rstrip()
        + f", {s['workers']} {s['worker_class']} workers x {s['threads']} threads; "
        f"wrk {s['wrk_threads']} thread{'s' if s['wrk_threads'] > 1 else ''}, "
        f"{s['connections']} connections, "
        f"{s['duration_s']} s (+{s['warmup_s']} s warm-up); {pin}; {s['cpus']} CPUs"
    )
    print(
        f"signed {s['body_bytes']} B Stripe webhooks, each a distinct event; Redis: "
        f"{s['redis']} ({s['redis_persistence']})"
    )
    print()
    header = (
        f"{'round':>5}  {'name':<4}  {'req/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}  "
        f"{'2xx':>7}  {'non-2xx':>7}  {'sock err':>8}  {'CPU us/req':>10}  {'others':>6}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        r, cpu = run.result, run.cpu
        total = "-" if cpu.total_us is None else f"{cpu.total_us:.0f}"
        others = "-" if cpu.others_cores is None else f"{cpu.others_cores:.2f}"
        print(
            f"{run.round:>5}  {run.name:<4}  {r.rps:>7.0f}  {r.p50_ms:>7.2f}  "
            f"{r.p99_ms:>7.2f}  {r.ok_2xx:>7}  {r.non_2xx:>7}  {r.errors:>8}  "
            f"{total:>10}  {others:>6}"
        )
    if len(runs) > 2:
        print(
            f"{'':>5}  median bare {summary['bare_rps_median']:.0f} req/s, "
            f"hub {summary['hub_rps_median']:.0f} req/s; per-round ratios "
            f"{', '.join(f'{x:.2f}' for x in summary['round_ratios'])}"
        )
    for run in runs:
        other = {c: n for c, n in run.result.statuses.items() if c != 202}
        if other:
            print(f"round {run.round} {run.name}: statuses other than 202: {other}")
    print(
        "CPU us/req: CPU time per request of gunicorn (+ Redis for the hub) + wrk; "
        "others: CPUs other processes kept busy meanwhile"
    )
    cpu = summary["cpu_us_per_request_median"]
    if summary["cpu_bound_ratio_estimate"] is not None:
        print(
            f"CPU per request: bare {cpu['bare']:.0f} us, hub {cpu['hub']:.0f} us -> "
            f"ratio if CPU-bound = {summary['cpu_bound_ratio_estimate']:.2f} (less sensitive "
            "to other load than req/s)"
        )
    busy = summary["other_processes_cpus_max"]
    if busy is not None and busy > NOISY_OTHERS_CPUS:
        print(
            f"note: other processes kept up to {busy:.2f} of the {s['cpus']} CPUs busy "
            "during the runs: req/s figures are noisy (use --rounds 3+ on a quiet machine)"
        )
    print()
    print(f"ratio (hub / bare) = {summary['ratio']:.2f} (target >= {TARGET_RATIO:.2f})")
    if summary["valid"]:
        print(summary["verdict"])
    else:
        print("INVALID RUN:")
        for problem in summary["problems"]:
            print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    opts, ns = parse_args(argv)
    return bench_main(
        "bench/receiver.py",
        "crmhub-bench-",
        embedded_redis=ns.embedded_redis,
        as_json=ns.json,
        setup=lambda: functools.partial(bench, opts, ensure_wrk()),
        summarize=functools.partial(summarize, opts),
        report=print_report,
    )


if __name__ == "__main__":
    sys.exit(main())
