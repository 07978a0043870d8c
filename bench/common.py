"""Helpers shared by the benchmarks in bench/: child processes, Redis, gunicorn and wrk.

Every process a benchmark starts goes through `Service` (its own session, so it and all its
children are stopped together by process group, on success, error or Ctrl-C alike). wrk runs
with a Lua script whose `request()` the benchmark generates; `WRK_LUA_REPORT` is appended to
it and adds the status count and a one-line JSON summary that `run_wrk` parses.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import redis

from core.embedded_redis import EmbeddedRedis, free_port

REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONF = "app/gunicorn_conf.py"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


class BenchError(RuntimeError):
    """A benchmark could not be set up or run (the message says what to do)."""


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report (or the JSON)."""
    print(message, file=sys.stderr, flush=True)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `finally` blocks stop what was started."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a still-running process started with `start_new_session`, with its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


REDIS_FLAG_HELP = "start a redis-server of our own even if one is reachable"


def add_common_flags(parser: argparse.ArgumentParser, *, redis_help: str = REDIS_FLAG_HELP) -> None:
    """The flags every benchmark takes: --embedded-redis and --json."""
    parser.add_argument("--embedded-redis", action="store_true", help=redis_help)
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead")


# --- wrk ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when it is missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is not on PATH: running `apt-get install -y wrk`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    detail = ""
    for command in (
        ["apt-get", "install", "-y", "wrk"],
        ["sh", "-c", "apt-get update && apt-get install -y wrk"],
    ):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            detail = str(exc)
            continue
        found = shutil.which("wrk")
        if done.returncode == 0 and found:
            return found
        output = (done.stderr or done.stdout).strip()
        detail = output.splitlines()[-1] if output else f"exit status {done.returncode}"
    raise BenchError(
        "wrk is required and could not be installed with `apt-get install -y "
        f"wrk` ({detail or 'unknown error'}); install it (Debian/Ubuntu package "
        "`wrk`, or build https://github.com/wg/wrk) and put it on PATH"
    )


def lua_long_string(text: str) -> str:
    """`text` as a Lua long string literal ([[...]], or [=[...]=] and so on if it holds ]])."""
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def lua_body_parts(parts: Sequence[str]) -> tuple[str, str]:
    """For a script whose bodies are `parts` joined by the event number `n`: the entries of
    its Lua `parts` table and the Lua expression that builds one body."""
    literals = ",\n  ".join(lua_long_string(p) for p in parts)
    body_expr = " .. n .. ".join(f"parts[{i + 1}]" for i in range(len(parts)))
    return literals, body_expr


def lua_next_signed_request(
    exhausted_path: str, *, digits: int, source: str, body_expr: str
) -> str:
    """Lua for request() (indented two spaces, but for its first line): send event number
    first + cursor, signed with the cursor-th 64-hex signature of `sigs`, and move `cursor`
    on by `stride`; past the last one, count it in `exhausted` and send a request to
    `exhausted_path` (which answers 404) instead."""
    lua = textwrap.dedent(f"""\
        local k = cursor
        if k >= count then
          exhausted = exhausted + 1
          return wrk.format("POST", "{exhausted_path}", headers, "{{}}")
        end
        cursor = k + stride
        local n = string.format("%0{digits}d", first + k)
        headers["Stripe-Signature"] = sig_prefix .. string.sub(sigs, k * 64 + 1, k * 64 + 64)
        return wrk.format("POST", "/webhooks/{source}", headers, {body_expr})""")
    return textwrap.indent(lua, "  ").lstrip()


#: Appended to every generated script. Threads keep their own counts (each wrk thread has its
#: own Lua state); done() runs in the main state and sums them through the thread objects.
#: A generated script may set the globals `cursor` (next unused request index) and
#: `exhausted` (requests sent after the pre-generated ones ran out).
WRK_LUA_REPORT = r"""
local bench_threads = {}
statuses = {}
cursor = 0
exhausted = 0

function setup(thread)
  thread:set("tid", #bench_threads)
  table.insert(bench_threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local codes, parts = {}, {}
  local next_cursor, out_of_requests = 0, 0
  for _, t in ipairs(bench_threads) do
    for code, n in pairs(t:get("statuses")) do codes[code] = (codes[code] or 0) + n end
    next_cursor = math.max(next_cursor, t:get("cursor") or 0)
    out_of_requests = out_of_requests + (t:get("exhausted") or 0)
  end
  for code, n in pairs(codes) do parts[#parts + 1] = string.format('"%d":%d', code, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d},' ..
    '"statuses":{%s},"cursor":%d,"exhausted":%d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, table.concat(parts, ","), next_cursor, out_of_requests))
end
"""


@dataclass(frozen=True)
class WrkResult:
    duration_s: float
    requests: int  # completed responses
    statuses: dict[int, int]
    socket_errors: dict[str, int]  # connect / read / write / timeout
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    cursor: int  # next unused pre-generated request index
    exhausted: int  # requests sent after the pre-generated ones ran out

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok_2xx

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "latency_ms": {
                "p50": self.p50_ms,
                "p90": self.p90_ms,
                "p99": self.p99_ms,
                "mean": self.mean_ms,
                "max": self.max_ms,
            },
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "exhausted": self.exhausted,
        }


def parse_wrk_output(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            data = json.loads(line.removeprefix("BENCH_RESULT "))
            break
    else:
        raise BenchError(f"wrk printed no BENCH_RESULT line; its output was:\n{stdout}")
    lat = data["latency_us"]
    errors = data["errors"]
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        socket_errors={k: int(errors[k]) for k in ("connect", "read", "write", "timeout")},
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=round(lat["mean"] / 1000, 3),
        max_ms=lat["max"] / 1000,
        cursor=int(data["cursor"]),
        exhausted=int(data["exhausted"]),
    )


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    script_args: Sequence[str],
    *,
    threads: int,
    connections: int,
    seconds: int,
    pin_cpus: str | None = None,
    timeout_s: int = 5,
) -> WrkResult:
    """One wrk run; returns what the script's done() reported."""
    command = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    if pin_cpus:
        command = ["taskset", "-c", pin_cpus, *command]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    finally:
        kill_group(proc)
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {stderr.strip() or stdout}")
    return parse_wrk_output(stdout)


# --- CPU accounting -------------------------------------------------------------------------
# Throughput on a small shared machine moves with whatever else runs; CPU time per request
# does much less. Linux only (/proc); elsewhere the figures are None.

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name (fields[0] is the state); None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process (not its children), from /proc; None elsewhere."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU of a process group's live members, with their reaped children."""
    total = 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is stat's 5th field
            utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
            total += (utime + stime + cutime + cstime) / _TICK
    return total


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat; idle and iowait excluded)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / _TICK


def redis_cpu_seconds(client: redis.Redis) -> float | None:
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def children_cpu_seconds() -> float:
    """CPU of this process's waited-for children (wrk, once each run has ended)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuSample:
    at: float
    server: float | None
    redis: float | None
    load_generator: float
    machine: float | None


def cpu_sample(server_pgid: int, client: redis.Redis | None) -> CpuSample:
    return CpuSample(
        at=time.monotonic(),
        server=group_cpu_seconds(server_pgid),
        redis=redis_cpu_seconds(client) if client is not None else None,
        load_generator=children_cpu_seconds(),
        machine=machine_busy_seconds(),
    )


@dataclass(frozen=True)
class CpuUse:
    """CPU used during one run: per request (µs) and, for the rest of the machine, in cores."""

    server_us: float | None  # gunicorn master + workers
    redis_us: float | None
    load_generator_us: float  # wrk
    others_cores: float | None  # everything else on the machine, in CPUs busy

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample, requests: int) -> CpuUse:
        n = max(requests, 1)

        def delta(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(b - a, 0.0)

        server = delta(before.server, after.server)
        rds = delta(before.redis, after.redis)
        gen = max(after.load_generator - before.load_generator, 0.0)
        machine = delta(before.machine, after.machine)
        elapsed = max(after.at - before.at, 1e-9)
        others = (
            None
            if machine is None
            else max(machine - (server or 0.0) - (rds or 0.0) - gen, 0.0) / elapsed
        )
        return cls(
            server_us=None if server is None else server / n * 1e6,
            redis_us=None if rds is None else rds / n * 1e6,
            load_generator_us=gen / n * 1e6,
            others_cores=others,
        )

    @property
    def total_us(self) -> float | None:
        """Server + Redis + load generator: what one request costs the machine."""
        if self.server_us is None:
            return None
        return self.server_us + (self.redis_us or 0.0) + self.load_generator_us

    def as_json(self) -> dict[str, float | None]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 1)

        return {
            "server_us_per_request": r(self.server_us),
            "redis_us_per_request": r(self.redis_us),
            "wrk_us_per_request": r(self.load_generator_us),
            "total_us_per_request": r(self.total_us),
            "other_processes_cpus": None
            if self.others_cores is None
            else round(self.others_cores, 2),
        }


# --- processes ------------------------------------------------------------------------------


@dataclass
class Service:
    """A child process in its own session; stop() ends it and everything it started."""

    name: str
    args: list[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            env=dict(self.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            group = proc.pid  # start_new_session: the pid is the group id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
            # workers that outlived their master (or a master that ignored SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


def http_status(
    host: str, port: int, method: str, path: str, body: bytes = b"", timeout: float = 2.0
) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_http(
    service: Service, port: int, path: str, *, expect: int | None = None, timeout: float = 30.0
) -> None:
    """Wait until `GET path` answers (with `expect`, when given)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not service.alive():
            raise BenchError(
                f"{service.name} exited at start; its log ends with:\n{service.log_tail()}"
            )
        try:
            status = http_status("127.0.0.1", port, "GET", path)
            if expect is None or status == expect:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} did not become ready on port {port} within {timeout} s "
        f"({last}); its log ends with:\n{service.log_tail()}"
    )


def gunicorn_command(module: str, extra_flags: Sequence[str] = ()) -> list[str]:
    """The receiver's gunicorn command line (`-c app/gunicorn_conf.py`), for any app."""
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, *extra_flags, module]


# --- Redis ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchRedis:
    url: str
    origin: str  # where it came from, for the report
    persistence: str  # e.g. "appendonly=yes appendfsync=everysec"


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _persistence(client: redis.Redis) -> str:
    try:
        aof = client.config_get("appendonly").get("appendonly", "?")
        fsync = client.config_get("appendfsync").get("appendfsync", "?")
        save = client.config_get("save").get("save", "?")
    except redis.RedisError:
        return "unknown (CONFIG GET refused)"
    return f"appendonly={aof} appendfsync={fsync} save={save!r}"


@contextlib.contextmanager
def bench_redis(tmp: Path, *, embedded: bool = False) -> Iterator[BenchRedis]:
    """CRMHUB_REDIS_URL if set, else a Redis on 127.0.0.1:6379 if one answers, else (or with
    `embedded`) a redis-server of our own (core.embedded_redis) under `tmp`, stopped after."""
    server: EmbeddedRedis | None = None
    env_url = os.environ.get("CRMHUB_REDIS_URL")
    if env_url and not embedded:
        url, origin = env_url, "CRMHUB_REDIS_URL"
        if not _answers(url):
            raise BenchError("CRMHUB_REDIS_URL is set but that Redis does not answer PING")
    elif not embedded and _answers(LOCAL_REDIS_URL):
        url, origin = LOCAL_REDIS_URL, "local 127.0.0.1:6379"
    else:
        server = EmbeddedRedis(tmp / "redis")
        url, origin = server.start(), "embedded (core.embedded_redis)"
    try:
        client = redis.Redis.from_url(url)
        try:
            persistence = _persistence(client)
        finally:
            client.close()
        yield BenchRedis(url=url, origin=origin, persistence=persistence)
    finally:
        if server is not None:
            server.stop()


def delete_prefix(url: str, prefix: str) -> int:
    """DEL every key under "<prefix>:" (SCAN MATCH, in batches); returns how many."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


# --- main -----------------------------------------------------------------------------------

Results = TypeVar("Results")


def hub_env(
    rds: BenchRedis, prefix: str, tmp: Path, config: Path, concurrency: int, **extra: str
) -> dict[str, str]:
    """The hub's environment for one bench run: its own key prefix and var directory, the
    worker's concurrency, and the Redis broker (a RabbitMQ URL in the caller's environment
    would measure something else); `extra`: the run's secrets and credentials."""
    env = {
        **os.environ,
        **extra,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": rds.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp / "var"),
        "CRMHUB_WORKER_CONCURRENCY": str(concurrency),
    }
    env.pop("CRMHUB_BROKER_URL", None)
    return env


def bench_main(
    script: str,
    tmp_prefix: str,
    *,
    embedded_redis: bool,
    as_json: bool,
    setup: Callable[[], Callable[[Path, BenchRedis], Results]],
    summarize: Callable[[Results, BenchRedis], dict[str, Any]],
    report: Callable[[dict[str, Any], Results], None],
) -> int:
    """A benchmark's main() after its arguments are parsed: SIGTERM stops the run like ^C;
    `setup()` gives the run, made in a temporary directory with a Redis (bench_redis);
    then the summary is printed as JSON or by `report`. Exit 0 for a valid run, 1 for an
    invalid one, 2 when it could not be set up or run (BenchError), 130 when interrupted."""
    raise_on_sigterm()
    try:
        run = setup()
        with tempfile.TemporaryDirectory(prefix=tmp_prefix) as tmp_name:
            tmp = Path(tmp_name)
            with bench_redis(tmp, embedded=embedded_redis) as rds:
                results = run(tmp, rds)
    except BenchError as exc:
        log(f"{script}: {exc}")
        return 2
    except KeyboardInterrupt:
        log(f"{script}: interrupted; everything started was stopped")
        return 130
    summary = summarize(results, rds)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        report(summary, results)
    return 0 if summary["valid"] else 1


__all__ = [
    "GUNICORN_CONF",
    "LOCAL_REDIS_URL",
    "REDIS_FLAG_HELP",
    "REPO",
    "WRK_LUA_REPORT",
    "BenchError",
    "BenchRedis",
    "CpuSample",
    "CpuUse",
    "Service",
    "WrkResult",
    "add_common_flags",
    "bench_main",
    "bench_redis",
    "children_cpu_seconds",
    "cpu_sample",
    "delete_prefix",
    "ensure_wrk",
    "free_port",
    "group_cpu_seconds",
    "gunicorn_command",
    "http_status",
    "hub_env",
    "kill_group",
    "log",
    "lua_body_parts",
    "lua_long_string",
    "lua_next_signed_request",
    "machine_busy_seconds",
    "parse_wrk_output",
    "process_cpu_seconds",
    "raise_on_sigterm",
    "redis_cpu_seconds",
    "run_wrk",
    "running",
    "wait_http",
]
