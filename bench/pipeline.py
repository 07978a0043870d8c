"""End-to-end pipeline: crmhub (receiver -> ledger -> worker -> target) against bare Celery.

What is measured
    Two pipelines carry the same signed 1 KB Stripe `customer.created` events (each its own
    event id and customer email, so each is its own record) to the same fake CRM
    (connectors/fakes/http.py), which logs every write with its own clock:

    hub   the real thing: gunicorn `app.wsgi:app` (verify, dedupe, record event + delivery
          and publish the Celery message in one Lua call, 202), `celery -A workers.celery_app
          worker` (claim, read delivery + event, map, PUT /contacts/<email>, finish) and
          `celery beat` (the sweeper), as tests/processes.py `Part` runs them.
    bare  bench/pipeline_bare.py: a Flask view under the same gunicorn command that parses
          the JSON and calls `bare_deliver.delay(event, received_at)` on a Celery app with
          the hub's broker settings (Redis, acks_late, prefetch 1); the task PUTs the same
          fields to the same URL with a keep-alive httpx client per process. No ledger.

    Both get the same Redis, the same gunicorn settings (CRMHUB_WEB_WORKERS /
    CRMHUB_WEB_THREADS), the same worker command line (prefork, `--concurrency`
    = CRMHUB_WORKER_CONCURRENCY, default 2) and the same load. Figures, per pipeline:

    end-to-end events/s  N events (`--events`) sent by wrk as fast as the web tier accepts
                         them; N / (time from the start of wrk to the target's log time of
                         the last of the N first successful PUTs). The issue's ratio is
                         hub / bare of this figure (target >= 1.0).
    drain events/s       the worker stopped, N events accepted (queued), the worker started:
                         (N - 1) / (last write - first write). The worker alone, no web load.
    latency              a paced sender (`--rate`, default 200 events/s, for
                         `--latency-seconds`): per event, the target's log time of its PUT
                         minus its receipt time (hub: the ledger's `received_at`, in ms;
                         bare: time.time() in the view, carried in the task). p50/p99/max;
                         target: hub p99 <= 50 ms.

Method
    wrk cannot sign, so the events are signed beforehand (core.signatures, Stripe scheme)
    and a generated wrk script walks through them, never reusing one; it prints a marker when
    its thread got the answer to its last event and stops (`wrk.thread:stop()`), and the
    bench then ends wrk with SIGINT, so no request is sent beyond the N. Writes are joined
    with sends by the number in the record key (the customer email). The run is valid when
    every event was accepted (202) and reached the target with a 2xx; otherwise the report
    says which are missing and the exit status is 1 (2: could not set up; 130: interrupted).
    Each pipeline starts with a short paced warm-up (not reported). Everything started is
    stopped, and every Redis key under the run's two key prefixes deleted, on success, error
    or Ctrl-C alike. The machine has 2 cores, shared by wrk, both tiers, Redis and the
    target; the CPU per event of each part is reported alongside, being steadier than rates.

Run it from the repository root: `.venv/bin/python bench/pipeline.py [--json] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from common import (
    REPO,
    WRK_LUA_REPORT,
    BenchError,
    BenchRedis,
    Service,
    WrkResult,
    add_common_flags,
    bench_main,
    children_cpu_seconds,
    delete_prefix,
    ensure_wrk,
    free_port,
    group_cpu_seconds,
    gunicorn_command,
    kill_group,
    log,
    lua_body_parts,
    lua_long_string,
    lua_next_signed_request,
    machine_busy_seconds,
    parse_wrk_output,
    redis_cpu_seconds,
    wait_http,
)
from receiver import DIGITS, SECRET_ENV, SOURCE, body_parts

from app import gunicorn_conf
from core.ledger.keys import LedgerKeys
from core.signatures import VerifyOptions, get_scheme

TARGET_RATIO = 1.0  # issue 17: the guarantees cost no throughput
TARGET_P99_MS = 50.0
CONNECTION = "bench-crm"
OBJECT = "contacts"
BENCH_DIR = Path(__file__).resolve().parent
BARE_MODULE = "pipeline_bare"
NUMBER_IN_KEY = re.compile(rf"(\d{{{DIGITS}}})")
SENT_MARKER = "BENCH_SENT_DONE"
WARMUP_RATE = 100.0
SENDER_THREADS = 8
LOG_PAGE = 20000

HUB_CONFIG = """\
# written by bench/pipeline.py: one Stripe source whose customer.created events map to one
# http connection (the demo target), so each event is one delivery and one PUT.
sources:
  {source}:
    verify: {{scheme: stripe, secret_env: {secret_env}}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: http
    base_url: {target}
mappings:
  bench-customer-to-contact:
    source: {source}
    when: {{event_type: customer.created}}
    connection: {connection}
    object: {object}
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      name: data.object.name
      stripe_customer_id: data.object.id
"""


# --- the events -----------------------------------------------------------------------------


@dataclass
class Events:
    """Numbers events across the whole run and signs them (every event is distinct)."""

    parts: list[str]
    secret: str
    next_number: int = 0

    def take(self, count: int) -> range:
        numbers = range(self.next_number, self.next_number + count)
        self.next_number += count
        return numbers

    def body(self, number: int) -> bytes:
        return f"{number:0{DIGITS}d}".join(self.parts).encode()

    def signed(self, number: int, now: float) -> tuple[bytes, dict[str, str]]:
        body = self.body(number)
        headers = get_scheme("stripe").sign(
            body=body, secret=self.secret, options=VerifyOptions(scheme="stripe"), now=now
        )
        return body, {"Content-Type": "application/json", **headers}


def write_burst_script(tmp: Path, name: str, events: Events, numbers: range) -> Path:
    """A wrk script sending exactly `numbers`, each signed now (64 hex each in a file)."""
    now = time.time()
    prefix = f"t={int(now)},v1="
    sigs = []
    for number in numbers:
        value = events.signed(number, now)[1]["Stripe-Signature"]
        if not value.startswith(prefix) or len(value) != len(prefix) + 64:
            raise BenchError(f"unexpected Stripe-Signature format: {value!r}")
        sigs.append(value[len(prefix) :])
    sig_file = tmp / f"{name}.sig"
    sig_file.write_text("".join(sigs), encoding="ascii")
    literals, body_expr = lua_body_parts(events.parts)
    script = textwrap.dedent("""\
        -- Generated by bench/pipeline.py. Thread t sends events first + t, first + t + s, ...
        -- (s = args[1] = wrk threads) while any are left; once it has the answer to its last
        -- one it prints {marker} and stops. delay() holds back a connection with nothing
        -- left to send, so (bar a race or two) nothing is sent beyond the events. wrk 4.1
        -- calls request() once on thread 0's state, right after init(), only to check the
        -- request it builds: that first call gets a throw-away (404) request, never an event.
        local parts = {{
          {literals}
        }}
        local sig_prefix = "{sig_prefix}"
        local first = {first}
        local sigs, count, stride
        local quota, answered = 0, 0
        local checked
        local headers = {{["Content-Type"] = "application/json"}}

        function init(args)
          stride = tonumber(args[1])
          local f = assert(io.open({sig_file}, "rb"))
          sigs = f:read("*a")
          f:close()
          count = #sigs / 64
          cursor = tid
          checked = tid ~= 0
          if cursor < count then quota = math.floor((count - 1 - cursor) / stride) + 1 end
        end

        function delay()
          if cursor >= count then return 600000 end
          return 0
        end

        function request()
          if not checked then
            checked = true
            return wrk.format("POST", "/bench-no-more-events", headers, "{{}}")
          end
          {next_request}
        end
        """).format(
        marker=SENT_MARKER,
        literals=literals,
        sig_prefix=prefix,
        first=numbers.start,
        sig_file=lua_long_string(str(sig_file)),
        next_request=lua_next_signed_request(
            "/bench-no-more-events", digits=DIGITS, source=SOURCE, body_expr=body_expr
        ),
    )
    script += WRK_LUA_REPORT + textwrap.dedent(f"""\
        local count_status = response
        function response(status, headers, body)
          count_status(status, headers, body)
          if status ~= 404 then
            answered = answered + 1
            if answered == quota then
              io.write("{SENT_MARKER}\\n")
              io.flush()
              wrk.thread:stop()
            end
          end
        end
        """)
    path = tmp / f"{name}.lua"
    path.write_text(script, encoding="utf-8")
    return path


# --- wrk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    started: float  # time.time() just before wrk was started
    answered: float | None  # when the last thread reported its last answer
    result: WrkResult

    @property
    def accepted(self) -> int:
        return self.result.statuses.get(202, 0)


def run_burst(
    wrk: str, url: str, script: Path, *, threads: int, connections: int, timeout_s: float
) -> Burst:
    """Send the script's events; return when every thread had its last answer (or timeout)."""
    command = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        "3600s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(threads),
    ]
    lines: list[str] = []
    markers: list[float] = []
    all_answered = threading.Event()
    started = time.time()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(SENT_MARKER):
                markers.append(time.time())
                if len(markers) == threads:
                    all_answered.set()
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        all_answered.wait(timeout_s)
        answered = markers[-1] if all_answered.is_set() else None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        proc.wait(30)
        reader.join(5)
    finally:
        kill_group(proc)
    if proc.returncode != 0:
        stderr = proc.stderr.read() if proc.stderr else ""
        raise BenchError(f"wrk exited with {proc.returncode}: {stderr.strip()}")
    return Burst(started=started, answered=answered, result=parse_wrk_output("".join(lines)))


# --- the target's log -----------------------------------------------------------------------


@dataclass
class Writes:
    """The first successful PUT of each wanted event, as the target logged it."""

    wanted: range
    first_ok: dict[int, dict[str, Any]] = field(default_factory=dict)
    repeats: int = 0  # further successful PUTs of an event already written
    failed: int = 0  # non-2xx PUTs of wanted events

    def add(self, entry: dict[str, Any]) -> None:
        match = NUMBER_IN_KEY.search(str(entry.get("key") or ""))
        if entry.get("method") != "PUT" or match is None:
            return
        number = int(match.group(1))
        if number not in self.wanted:
            return
        status = entry.get("status") or 0
        if not 200 <= status < 300:
            self.failed += 1
        elif number in self.first_ok:
            self.repeats += 1
        else:
            self.first_ok[number] = entry

    @property
    def complete(self) -> bool:
        return len(self.first_ok) == len(self.wanted)

    def missing(self) -> list[int]:
        return [n for n in self.wanted if n not in self.first_ok]

    def times(self) -> list[float]:
        return sorted(float(e["time"]) for e in self.first_ok.values())


class Target:
    """The demo target's control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def last_seq(self) -> int:
        return int(
            self.http.get("/_control/log", params={"since": 0, "limit": 0}).json()["last_seq"]
        )

    def entries(self, since: int) -> tuple[list[dict[str, Any]], int]:
        """Log entries after `since`, and the seq to continue from."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.http.get("/_control/log", params={"since": since, "limit": LOG_PAGE}).json()
            out.extend(page["entries"])
            if page["entries"]:
                since = int(page["entries"][-1]["seq"])
            if len(page["entries"]) < LOG_PAGE:
                return out, since

    def collect(self, since: int, wanted: range, stall_timeout: float) -> Writes:
        """Follow the log until every wanted event was written, or nothing moved for
        `stall_timeout` seconds."""
        writes = Writes(wanted)
        last_progress = time.monotonic()
        while True:
            entries, since = self.entries(since)
            for entry in entries:
                writes.add(entry)
            if writes.complete:
                return writes
            now = time.monotonic()
            if entries:
                last_progress = now
            elif now - last_progress > stall_timeout:
                return writes
            time.sleep(0.1)

    def close(self) -> None:
        self.http.close()


# --- the two pipelines ----------------------------------------------------------------------


def celery_worker_command(app: str, queues: str, concurrency: int) -> list[str]:
    """The hub's worker command line (tests/processes.py `Part`), for either Celery app."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel",
        "WARNING",
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


@dataclass
class Pipeline:
    """One pipeline's processes: the web tier stays up; the worker (and, for the hub, beat)
    is started and stopped per phase."""

    name: str  # hub | bare
    web: Service
    port: int
    worker_args: list[str]
    beat_args: list[str] | None
    env: dict[str, str]
    queue_key: str  # the Redis list holding its Celery messages
    tmp: Path
    workers: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_worker(self) -> None:
        self.stop_worker()
        commands = [("worker", self.worker_args)]
        if self.beat_args:
            commands.append(("beat", self.beat_args))
        for part, args in commands:
            service = Service(
                name=f"{self.name} {part}",
                args=args,
                env=self.env,
                cwd=REPO,
                log_path=self.tmp / f"{self.name}-{part}.log",
            )
            service.start()
            self.workers.append(service)

    def stop_worker(self) -> None:
        while self.workers:
            self.workers.pop().stop()

    def check_alive(self) -> None:
        for service in (self.web, *self.workers):
            if not service.alive():
                raise BenchError(f"{service.name} died; its log ends with:\n{service.log_tail()}")

    def worker_pgid(self) -> int:
        if not self.workers:
            raise BenchError(f"{self.name}: no worker running")
        return pgid(self.workers[0])


def pgid(service: Service) -> int:
    """A service's process group (it runs in its own session: the group id is its pid)."""
    if service.proc is None:
        raise BenchError(f"{service.name} is not running")
    return service.proc.pid


@dataclass
class Run:
    """What every phase needs."""

    opts: Options
    wrk: str
    tmp: Path
    events: Events
    target: Target
    target_service: Service
    redis: redis.Redis
    hub_prefix: str


# --- CPU accounting -------------------------------------------------------------------------

PARTS = ("web", "worker", "redis", "target", "wrk")


def cpu_now(run: Run, pipe: Pipeline) -> dict[str, float | None]:
    return {
        "web": group_cpu_seconds(pgid(pipe.web)),
        "worker": group_cpu_seconds(pipe.worker_pgid()),
        "redis": redis_cpu_seconds(run.redis),
        "target": group_cpu_seconds(pgid(run.target_service)),
        "wrk": children_cpu_seconds(),
        "bench": time.process_time(),  # this process: the paced sender, log polling
        "machine": machine_busy_seconds(),
        "at": time.monotonic(),
    }


def cpu_per_event(
    before: dict[str, float | None], after: dict[str, float | None], events: int
) -> dict[str, float | None]:
    """µs of CPU per event for each part and in all, and the CPUs that other processes (not
    the pipeline, the load generator or this bench) kept busy meanwhile."""
    out: dict[str, float | None] = {}
    ours = 0.0
    for part in PARTS:
        a, b = before[part], after[part]
        delta = None if a is None or b is None else max(b - a, 0.0)
        ours += delta or 0.0
        out[part] = None if delta is None else round(delta / max(events, 1) * 1e6, 1)
    out["total"] = round(ours / max(events, 1) * 1e6, 1)
    ours += (after["bench"] or 0.0) - (before["bench"] or 0.0)
    m0, m1, t0, t1 = before["machine"], after["machine"], before["at"], after["at"]
    out["other_processes_cpus"] = (
        None
        if None in (m0, m1, t0, t1)
        else round(max(m1 - m0 - ours, 0.0) / max(t1 - t0, 1e-9), 2)  # type: ignore[operator]
    )
    return out


# --- phases ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def missing_note(writes: Writes, label: str) -> str | None:
    missing = writes.missing()
    if not missing:
        return None
    shown = ", ".join(str(n) for n in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return (
        f"{label}: {len(missing)} of {len(writes.wanted)} events never reached the "
        f"target (event numbers {shown}{more}; {writes.failed} failed PUTs seen)"
    )


def burst_note(burst: Burst, expected: int, label: str) -> str | None:
    r = burst.result
    if burst.accepted == expected and not r.errors:
        return None
    other = {c: n for c, n in r.statuses.items() if c != 202}
    return (
        f"{label}: {burst.accepted} of {expected} events answered 202 (other statuses "
        f"{other}, socket errors {r.socket_errors}"
        f"{'' if burst.answered else ', wrk timed out'})"
    )


def send_burst(run: Run, pipe: Pipeline, numbers: range, name: str) -> Burst:
    script = write_burst_script(run.tmp, name, run.events, numbers)
    return run_burst(
        run.wrk,
        pipe.url,
        script,
        threads=run.opts.wrk_threads,
        connections=run.opts.connections,
        timeout_s=max(60.0, len(numbers) / 50),
    )


def throughput(run: Run, pipe: Pipeline, label: str) -> dict[str, Any]:
    """N events as fast as wrk can send them, the worker running: first send -> last write."""
    numbers = run.events.take(run.opts.events)
    since = run.target.last_seq()
    log(f"{label}: sending {len(numbers)} events with wrk")
    before = cpu_now(run, pipe)
    burst = send_burst(run, pipe, numbers, f"{label.replace(' ', '-')}-throughput")
    writes = run.target.collect(since, numbers, run.opts.stall_timeout)
    after = cpu_now(run, pipe)
    times = writes.times()
    last = times[-1] if times else None
    out: dict[str, Any] = {
        "events": len(numbers),
        "accepted_202": burst.accepted,
        "delivered": len(times),
        "repeat_writes": writes.repeats,
        "failed_writes": writes.failed,
        "events_per_s": round(len(times) / (last - burst.started), 1) if last else 0.0,
        "seconds": round(last - burst.started, 3) if last else None,
        "accept_rate_per_s": round(burst.accepted / (burst.answered - burst.started), 1)
        if burst.answered
        else None,
        "last_write_after_last_202_s": round(last - burst.answered, 3)
        if last and burst.answered
        else None,
        "cpu_us_per_event": cpu_per_event(before, after, len(numbers)),
        "wrk": burst.result.as_json(),
        "problems": [
            p
            for p in (
                burst_note(burst, len(numbers), f"{label} throughput"),
                missing_note(writes, f"{label} throughput"),
            )
            if p
        ],
    }
    log(
        f"  {out['events_per_s']} events/s end to end ({out['seconds']} s); accepted at "
        f"{out['accept_rate_per_s']}/s; last write {out['last_write_after_last_202_s']} s "
        f"after the last 202; CPU us/event {out['cpu_us_per_event']}"
    )
    return out


@dataclass(frozen=True)
class Sent:
    number: int
    sent_at: float
    status: int
    event_id: str | None


def paced_send(
    url: str, requests: list[tuple[int, bytes, dict[str, str]]], rate: float
) -> list[Sent]:
    """Send request i at start + i / rate (SENDER_THREADS threads, keep-alive clients).

    Each thread opens its connection before the clock starts: otherwise the first sends wait
    for thread start and TCP set-up and then go out together, a burst of ~5x the rate that the
    latency figures would count against the pipeline."""
    results: list[Sent | None] = [None] * len(requests)
    connected = threading.Barrier(SENDER_THREADS + 1)
    go = threading.Event()
    start = 0.0

    def sender(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            with contextlib.suppress(httpx.HTTPError):
                client.get("/")  # any answer will do: the connection is open
            connected.wait()
            go.wait()
            for i in range(offset, len(requests), SENDER_THREADS):
                pause = start + i / rate - time.time()
                if pause > 0:
                    time.sleep(pause)
                number, body, headers = requests[i]
                sent_at = time.time()
                status, event_id = 0, None
                try:
                    response = client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)
                    status = response.status_code
                    if status == 202:
                        event_id = response.json().get("event_id")
                except httpx.HTTPError:
                    pass
                results[i] = Sent(number, sent_at, status, event_id)

    threads = [
        threading.Thread(target=sender, args=(k,), daemon=True) for k in range(SENDER_THREADS)
    ]
    for t in threads:
        t.start()
    connected.wait()
    start = time.time() + 0.05
    go.set()
    for t in threads:
        t.join()
    return [s for s in results if s is not None]


def paced(
    run: Run, pipe: Pipeline, rate: float, seconds: float, label: str
) -> tuple[list[Sent], Writes, dict[str, float | None]]:
    """Send at `rate` for `seconds`; the sends, the writes, and the CPU used meanwhile."""
    numbers = run.events.take(max(int(rate * seconds), 1))
    now = time.time()
    requests = [(n, *run.events.signed(n, now)) for n in numbers]
    since = run.target.last_seq()
    log(f"{label}: {len(numbers)} events at {rate:g}/s")
    before = cpu_now(run, pipe)
    sent = paced_send(pipe.url, requests, rate)
    writes = run.target.collect(since, numbers, run.opts.stall_timeout)
    return sent, writes, cpu_per_event(before, cpu_now(run, pipe), len(numbers))


def receipt_times(run: Run, pipe: Pipeline, sent: list[Sent], writes: Writes) -> dict[int, float]:
    """When each event was received: the hub's ledger (`received_at`, ms), or the time the
    bare view put into the task (carried to the target in the body)."""
    if pipe.name == "bare":
        return {n: float(e["body"]["received_at"]) for n, e in writes.first_ok.items()}
    accepted = [s for s in sent if s.event_id]
    pipe_ = run.redis.pipeline(transaction=False)
    for s in accepted:
        pipe_.hget(LedgerKeys(run.hub_prefix).event(str(s.event_id)), "received_at")
    return {
        s.number: int(v) / 1000
        for s, v in zip(accepted, pipe_.execute(), strict=True)
        if v is not None
    }


def latency(run: Run, pipe: Pipeline, label: str) -> dict[str, Any]:
    """A steady `--rate` for `--latency-seconds`: receipt -> target write, per event."""
    opts = run.opts
    sent, writes, cpu = paced(run, pipe, opts.rate, opts.latency_seconds, f"{label} latency")
    received = receipt_times(run, pipe, sent, writes)
    by_number = {s.number: s for s in sent}
    lat = [
        (float(e["time"]) - received[n]) * 1000
        for n, e in sorted(writes.first_ok.items())
        if n in received
    ]
    quarter = max(len(lat) // 4, 1)
    per_second = max(int(opts.rate), 1)
    e2e = [(float(e["time"]) - by_number[n].sent_at) * 1000 for n, e in writes.first_ok.items()]
    ok = [s for s in sent if 200 <= s.status < 300]
    span = max(s.sent_at for s in sent) - min(s.sent_at for s in sent) if sent else 0.0
    problems = [p for p in (missing_note(writes, f"{label} latency"),) if p]
    if len(ok) != len(sent):
        problems.append(
            f"{label} latency: {len(sent) - len(ok)} of {len(sent)} sends were not accepted"
        )

    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p50": None, "p99": None, "max": None}
        return {
            "p50": round(percentile(values, 50), 2),
            "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2),
        }

    out = {
        "events": len(sent),
        "rate_achieved_per_s": round((len(sent) - 1) / span, 1) if span else None,
        "delivered": len(writes.first_ok),
        "receipt_to_target_ms": stats(lat),
        "send_to_target_ms": stats(e2e),
        "p50_first_quarter_ms": stats(lat[:quarter])["p50"],
        "p50_last_quarter_ms": stats(lat[-quarter:])["p50"],
        "p50_ms_by_second": [
            stats(lat[i : i + per_second])["p50"] for i in range(0, len(lat), per_second)
        ],
        "other_processes_cpus": cpu["other_processes_cpus"],
        "problems": problems,
    }
    log(
        f"  receipt -> target {out['receipt_to_target_ms']} ms; send -> target "
        f"{out['send_to_target_ms']} ms; achieved {out['rate_achieved_per_s']}/s; p50 first "
        f"quarter {out['p50_first_quarter_ms']} ms, last quarter {out['p50_last_quarter_ms']} ms"
    )
    return out


def warm_up(run: Run, pipe: Pipeline, label: str) -> None:
    """A short paced run through the whole pipeline (imports, connections, caches)."""
    count = run.opts.warmup_events
    if count:
        sent, writes, _ = paced(run, pipe, WARMUP_RATE, count / WARMUP_RATE, f"{label} warm-up")
        note = missing_note(writes, f"{label} warm-up")
        refused = {s.status for s in sent if s.status != 202}
        if note or refused:
            tails = "\n".join(f"--- {s.name}:\n{s.log_tail(20)}" for s in (pipe.web, *pipe.workers))
            raise BenchError(
                f"{note or f'warm-up events answered {sorted(refused)}'}; the "
                f"logs end with:\n{tails}"
            )


def drain(run: Run, pipe: Pipeline, label: str) -> dict[str, Any]:
    """The worker stopped, N events accepted and queued; start it: first -> last write."""
    pipe.stop_worker()
    numbers = run.events.take(run.opts.events)
    since = run.target.last_seq()
    log(f"{label} drain: queueing {len(numbers)} events (worker stopped)")
    burst = send_burst(run, pipe, numbers, f"{label.replace(' ', '-')}-drain")
    queued = int(run.redis.llen(pipe.queue_key))
    pipe.start_worker()
    try:
        writes = run.target.collect(since, numbers, run.opts.stall_timeout)
    finally:
        pipe.stop_worker()
    times = writes.times()
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    out = {
        "events": len(numbers),
        "accepted_202": burst.accepted,
        "queued_messages": queued,
        "delivered": len(times),
        "repeat_writes": writes.repeats,
        "events_per_s": round((len(times) - 1) / span, 1) if span else 0.0,
        "seconds": round(span, 3),
        "problems": [
            p
            for p in (
                burst_note(burst, len(numbers), f"{label} drain"),
                missing_note(writes, f"{label} drain"),
            )
            if p
        ],
    }
    log(
        f"  drained {out['delivered']} at {out['events_per_s']} events/s "
        f"({queued} messages were queued)"
    )
    return out


def measure(run: Run, pipe: Pipeline, round_no: int) -> dict[str, Any]:
    label = f"round {round_no} {pipe.name}"
    pipe.start_worker()
    try:
        warm_up(run, pipe, label)
        pipe.check_alive()
        result: dict[str, Any] = {"round": round_no, "name": pipe.name}
        if run.opts.throughput:
            result["throughput"] = throughput(run, pipe, label)
            time.sleep(1.0)
        result["latency"] = latency(run, pipe, label)
        pipe.check_alive()
    finally:
        pipe.stop_worker()
    result["drain"] = drain(run, pipe, label) if run.opts.drain else None
    return result


# --- setup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    events: int
    latency_seconds: float
    rate: float
    rounds: int
    connections: int
    wrk_threads: int
    warmup_events: int
    stall_timeout: float
    web_workers: int
    web_threads: int
    concurrency: int
    drain: bool
    embedded_redis: bool
    json: bool
    throughput: bool = True  # False (--latency-only): the paced latency runs alone


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="crmhub end to end (receiver -> ledger -> worker -> fake CRM) against a "
        "bare Flask + Celery pipeline: events/s, drain rate, latency at a steady "
        "rate, and the ratio hub / bare."
    )
    parser.add_argument(
        "--events",
        type=int,
        default=5000,
        help="events per throughput and per drain run (default 5000)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=10.0,
        help="seconds of paced sending per latency run (default 10)",
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="events/s of the latency runs (default 200)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="hub/bare pairs; figures are medians over rounds (default 1)",
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--warmup-events",
        type=int,
        default=200,
        help="paced events through each pipeline before measuring (200)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=30.0,
        help="give up waiting for writes after this many seconds without one (default 30)",
    )
    parser.add_argument(
        "--no-drain", action="store_true", help="skip the pre-filled-queue drain runs"
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only the paced latency runs (--rate for --latency-seconds), for a quick p99 check",
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    if ns.events < max(ns.connections, 2) or ns.connections < ns.wrk_threads:
        parser.error("need --events >= --connections >= --wrk-threads >= 1")
    if ns.rate <= 0 or ns.latency_seconds <= 0 or ns.rounds < 1 or ns.warmup_events < 0:
        parser.error("--rate, --latency-seconds and --rounds must be positive")
    env = os.environ
    return Options(
        events=ns.events,
        latency_seconds=ns.latency_seconds,
        rate=ns.rate,
        rounds=ns.rounds,
        connections=ns.connections,
        wrk_threads=ns.wrk_threads,
        warmup_events=ns.warmup_events,
        stall_timeout=ns.stall_timeout,
        web_workers=int(env.get("CRMHUB_WEB_WORKERS") or 2),
        web_threads=gunicorn_conf.threads,
        concurrency=int(env.get("CRMHUB_WORKER_CONCURRENCY") or 2),
        drain=not ns.no_drain and not ns.latency_only,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
        throughput=not ns.latency_only,
    )


def start_target(tmp: Path) -> tuple[Service, int]:
    port = free_port()
    service = Service(
        name="demo target",
        cwd=REPO,
        log_path=tmp / "target.log",
        env=os.environ,
        args=[sys.executable, "-m", "connectors.fakes.http", "--port", str(port)],
    )
    return service, port


def make_pipelines(
    opts: Options, tmp: Path, rds: BenchRedis, target_url: str, prefix: str, secret: str
) -> dict[str, Pipeline]:
    config = tmp / "crmhub-pipeline.yaml"
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
    bare_prefix = f"{prefix}-bare"
    base = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": rds.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp / "var"),
        "CRMHUB_WEB_WORKERS": str(opts.web_workers),
        "CRMHUB_WEB_THREADS": str(opts.web_threads),
        "CRMHUB_WORKER_CONCURRENCY": str(opts.concurrency),
        SECRET_ENV: secret,
        "BENCH_BARE_BROKER_URL": rds.url,
        "BENCH_BARE_PREFIX": bare_prefix,
        "BENCH_BARE_TARGET_URL": target_url,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p
        ),
    }
    base.pop("CRMHUB_ACCESS_LOG", None)
    (tmp / "var").mkdir(exist_ok=True)
    pipes = {}
    for name, module, worker, queues, queue_key, beat in (
        (
            "hub",
            "app.wsgi:app",
            "workers.celery_app",
            f"{prefix}.deliveries,{prefix}.control",
            f"{prefix}:q:{prefix}.deliveries",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(tmp / "var" / "celerybeat-schedule"),
            ],
        ),
        (
            "bare",
            f"{BARE_MODULE}:web",
            BARE_MODULE,
            f"{bare_prefix}.bare",
            f"{bare_prefix}:q:{bare_prefix}.bare",
            None,
        ),
    ):
        port = free_port()
        env = {**base, "CRMHUB_PORT": str(port)}
        web = Service(
            name=f"{name} gunicorn",
            args=gunicorn_command(module),
            env=env,
            cwd=REPO,
            log_path=tmp / f"{name}-web.log",
        )
        pipes[name] = Pipeline(
            name=name,
            web=web,
            port=port,
            env=env,
            tmp=tmp,
            worker_args=celery_worker_command(worker, queues, opts.concurrency),
            beat_args=beat,
            queue_key=queue_key,
        )
    return pipes


@contextlib.contextmanager
def started(services: list[Service]) -> Iterator[None]:
    try:
        for service in services:
            service.start()
        yield
    finally:
        for service in reversed(services):
            service.stop()


def bench(opts: Options, wrk: str, tmp: Path, rds: BenchRedis) -> list[dict[str, Any]]:
    tag = secrets.token_hex(3)
    prefix = f"crmhub-pipeline-{os.getpid()}-{tag}"
    secret = "whsec_bench_" + secrets.token_hex(16)
    events = Events(parts=body_parts(tag, int(time.time())), secret=secret)
    client = redis.Redis.from_url(rds.url)
    target_service, target_port = start_target(tmp)
    target = Target(f"http://127.0.0.1:{target_port}")
    pipes = make_pipelines(opts, tmp, rds, target.url, prefix, secret)
    log(
        f"Redis: {rds.origin} ({rds.persistence}); key prefixes {prefix}, {prefix}-bare; "
        f"logs in {tmp}"
    )
    results: list[dict[str, Any]] = []
    try:
        with started([target_service]), started([p.web for p in pipes.values()]):
            wait_http(target_service, target_port, "/_control/health", expect=200)
            wait_http(pipes["hub"].web, pipes["hub"].port, "/readyz", expect=200)
            wait_http(pipes["bare"].web, pipes["bare"].port, "/")
            run = Run(
                opts=opts,
                wrk=wrk,
                tmp=tmp,
                events=events,
                target=target,
                target_service=target_service,
                redis=client,
                hub_prefix=prefix,
            )
            try:
                for round_no in range(1, opts.rounds + 1):
                    for name in ("hub", "bare"):
                        results.append(measure(run, pipes[name], round_no))
                        target.http.post("/_control/reset")
            finally:
                for pipe in pipes.values():
                    pipe.stop_worker()
    finally:
        target.close()
        for key_prefix in (prefix, f"{prefix}-bare"):
            with contextlib.suppress(redis.RedisError):
                log(f"deleted {delete_prefix(rds.url, key_prefix)} keys under {key_prefix}:")
        client.close()
    return results


# --- report ---------------------------------------------------------------------------------


def median_of(results: list[dict[str, Any]], name: str, *path: str) -> float | None:
    values = []
    for r in results:
        if r["name"] != name:
            continue
        value: Any = r
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return statistics.median(values) if values else None


def summarize(opts: Options, results: list[dict[str, Any]], rds: BenchRedis) -> dict[str, Any]:
    figures: dict[str, dict[str, float | None]] = {}
    for name in ("hub", "bare"):
        figures[name] = {
            "end_to_end_events_per_s": median_of(results, name, "throughput", "events_per_s"),
            "accept_rate_per_s": median_of(results, name, "throughput", "accept_rate_per_s"),
            "last_write_after_last_202_s": median_of(
                results, name, "throughput", "last_write_after_last_202_s"
            ),
            "drain_events_per_s": median_of(results, name, "drain", "events_per_s"),
            **{
                f"latency_{p}_ms": median_of(results, name, "latency", "receipt_to_target_ms", p)
                for p in ("p50", "p99", "max")
            },
            "send_to_target_p99_ms": median_of(
                results, name, "latency", "send_to_target_ms", "p99"
            ),
            **{
                f"latency_p50_{q}_quarter_ms": median_of(
                    results, name, "latency", f"p50_{q}_quarter_ms"
                )
                for q in ("first", "last")
            },
            "latency_other_processes_cpus": median_of(
                results, name, "latency", "other_processes_cpus"
            ),
            **{
                f"cpu_us_per_event_{part}": median_of(
                    results, name, "throughput", "cpu_us_per_event", part
                )
                for part in (*PARTS, "total", "other_processes_cpus")
            },
        }

    def ratio(key: str) -> float | None:
        hub, bare = figures["hub"][key], figures["bare"][key]
        return round(hub / bare, 3) if hub is not None and bare else None

    problems = [
        p
        for r in results
        for phase in ("throughput", "latency", "drain")
        if r.get(phase)
        for p in r[phase]["problems"]
    ]
    e2e_ratio = ratio("end_to_end_events_per_s")
    p99 = figures["hub"]["latency_p99_ms"]
    return {
        "settings": {
            "events": opts.events,
            "latency_seconds": opts.latency_seconds,
            "rate": opts.rate,
            "rounds": opts.rounds,
            "connections": opts.connections,
            "wrk_threads": opts.wrk_threads,
            "web_workers": opts.web_workers,
            "web_threads": opts.web_threads,
            "worker_concurrency": opts.concurrency,
            "cpus": os.cpu_count(),
            "redis": rds.origin,
            "redis_persistence": rds.persistence,
        },
        "hub": figures["hub"],
        "bare": figures["bare"],
        "ratio_end_to_end": e2e_ratio,
        "ratio_drain": ratio("drain_events_per_s"),
        # events/s scale with 1 / CPU per event when the pipeline has the machine to itself
        "cpu_bound_ratio_estimate": None
        if ratio("cpu_us_per_event_total") is None
        else round(1 / ratio("cpu_us_per_event_total"), 3),  # type: ignore[operator]
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        "ratio_verdict": "NOT MEASURED (--latency-only)"
        if e2e_ratio is None and not opts.throughput
        else "PASS"
        if e2e_ratio is not None and e2e_ratio >= TARGET_RATIO
        else "BELOW TARGET",
        "latency_verdict": "PASS" if p99 is not None and p99 <= TARGET_P99_MS else "ABOVE TARGET",
        "valid": not problems,
        "problems": problems,
        "runs": results,
    }


def _fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def print_report(summary: dict[str, Any]) -> None:
    s, hub, bare = summary["settings"], summary["hub"], summary["bare"]
    print(
        f"crmhub end to end vs bare Flask + Celery: {s['events']} events per run, signed 1 KB "
        f"Stripe customer.created, each its own record; {s['rounds']} round(s), medians"
    )
    print(
        f"gunicorn -c app/gunicorn_conf.py ({s['web_workers']} workers x {s['web_threads']} "
        f"threads), celery prefork --concurrency {s['worker_concurrency']}, wrk "
        f"{s['wrk_threads']} thread / {s['connections']} connections; connectors/fakes/http.py;"
        f" Redis: {s['redis']} ({s['redis_persistence']}); {s['cpus']} CPUs"
    )
    print()

    def row(
        label: str, key: str, digits: int = 0, unit: str = "", show_ratio: bool = False
    ) -> None:
        r = hub[key] / bare[key] if show_ratio and hub[key] is not None and bare[key] else None
        print(
            f"{label:<44}{_fmt(hub[key], digits, unit):>10}{_fmt(bare[key], digits, unit):>10}"
            f"{_fmt(r, 2):>10}"
        )

    print(f"{'':<44}{'hub':>10}{'bare':>10}{'hub/bare':>10}")
    row("end to end, events/s (first send->last write)", "end_to_end_events_per_s", show_ratio=True)
    row("  accepted by the web tier, events/s", "accept_rate_per_s")
    row("  last write after the last 202", "last_write_after_last_202_s", 1, " s")
    row("drain of a pre-filled queue, events/s", "drain_events_per_s", show_ratio=True)
    for part in PARTS:
        row(f"CPU per event (end-to-end run), {part}", f"cpu_us_per_event_{part}", 0, " us")
    row("CPU per event (end-to-end run), all of these", "cpu_us_per_event_total", 0, " us")
    row("  other processes' load during it, CPUs", "cpu_us_per_event_other_processes_cpus", 2)
    print(
        f"latency at {s['rate']:g} events/s for {s['latency_seconds']:g} s, receipt -> "
        "target write:"
    )
    for p in ("p50", "p99", "max"):
        row(f"  {p}", f"latency_{p}_ms", 1, " ms")
    row("  p99 from the sender's send (incl. the 202)", "send_to_target_p99_ms", 1, " ms")
    row("  p50 of the first quarter of the events", "latency_p50_first_quarter_ms", 1, " ms")
    row("  p50 of the last quarter of the events", "latency_p50_last_quarter_ms", 1, " ms")
    row("  other processes' load during it, CPUs", "latency_other_processes_cpus", 2)
    runs = summary["runs"]
    if len(runs) > 2 and all(r.get("throughput") for r in runs):
        print(
            "per round, end-to-end events/s: "
            + "; ".join(
                f"{r['round']} {r['name']} {r['throughput']['events_per_s']:.0f}" for r in runs
            )
        )
    print()
    print(
        f"ratio (hub / bare, end to end) = {_fmt(summary['ratio_end_to_end'], 2)} "
        f"(target >= {TARGET_RATIO:.2f}): {summary['ratio_verdict']}"
    )
    print(
        f"hub p99 receipt -> target write at {s['rate']:g}/s = "
        f"{_fmt(hub['latency_p99_ms'], 1)} ms (target <= {TARGET_P99_MS:.0f} ms; bare "
        f"{_fmt(bare['latency_p99_ms'], 1)} ms): {summary['latency_verdict']}"
    )
    if summary["cpu_bound_ratio_estimate"] is not None:
        print(
            f"CPU per event, bare / hub = {summary['cpu_bound_ratio_estimate']:.2f}: the "
            "end-to-end ratio to expect when the pipelines have the machine to themselves"
        )
    print_notes(summary)
    if not summary["valid"]:
        print("INVALID RUN (events went missing):")
        for problem in summary["problems"]:
            print(f"  {problem}")


def print_notes(summary: dict[str, Any]) -> None:
    s, hub, bare = summary["settings"], summary["hub"], summary["bare"]
    first, last = hub["latency_p50_first_quarter_ms"], hub["latency_p50_last_quarter_ms"]
    if first is not None and last is not None and last - first > max(50, first / 2):
        print(
            f"note: the hub's latency grew during the paced run (p50 {first:.0f} ms in the "
            f"first quarter, {last:.0f} ms in the last): its worker did not keep up with "
            f"{s['rate']:g} events/s here, so these percentiles measure a growing queue"
        )
    if not s["redis"].startswith("embedded"):
        print(
            "note: Redis is shared (not started for this run): other clients' commands "
            "delay ours and its CPU per event counts them; --embedded-redis gives a Redis "
            "of our own"
        )
    busy = max(
        (
            v
            for v in (
                hub["cpu_us_per_event_other_processes_cpus"],
                bare["cpu_us_per_event_other_processes_cpus"],
                hub["latency_other_processes_cpus"],
                bare["latency_other_processes_cpus"],
            )
            if v is not None
        ),
        default=None,
    )
    if busy is not None and busy > 0.2:
        print(
            f"note: other processes kept {busy:.2f} CPUs busy during the runs: the rates are "
            "noisy; compare the CPU per event, or rerun on a quiet machine"
        )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    return bench_main(
        "bench/pipeline.py",
        "crmhub-pipeline-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, opts, ensure_wrk()),
        summarize=functools.partial(summarize, opts),
        report=lambda summary, _results: print_report(summary),
    )


if __name__ == "__main__":
    sys.exit(main())
