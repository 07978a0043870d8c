"""A soak: many events at a steady rate through the whole hub (receiver, worker, beat, the
archive), with the hot retention compressed, watching memory over time.

What is measured
    A redis-server of its own (core.embedded_redis, as `crmhub serve` runs it), the demo target
    (connectors/fakes/http.py), and the Procfile's three processes: web (gunicorn), worker and
    beat, with CRMHUB_HOT_RETENTION_SECONDS set to `--retention` (1 h in production terms,
    compressed: the move, its batches and the archive's growth are the same, only sooner) and
    the archive on SQLite under the run's directory (or `--archive-url`). Signed 1 KB Stripe
    events are POSTed at `--rate` per second, over `--customers` distinct customers (records),
    until `--events` were sent; then the run waits for the archive to catch up. Every
    `--every` seconds a row: events sent, Redis used_memory and its key count, events done but
    still hot, archive lag, archive rows, and each process's RSS (its whole process group:
    gunicorn's workers, Celery's pool). At the end the same as a text plot (and a PNG with
    `--plot FILE` when matplotlib is installed).

    What should hold: Redis memory rises for the first `--retention` seconds, then stays flat
    (what arrives is archived as fast) apart from the dedupe keys and the records' newest_wins
    timestamps (both kept for the dedupe window, `CRMHUB_DEDUPE_TTL_SECONDS`); no process's RSS
    keeps growing.

Run it from the repository root: `.venv/bin/python bench/soak.py --events 100000 --rate 100`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from common import REPO, BenchError, Service, log, wait_http
from pipeline import celery_worker_command

from core.embedded_redis import EmbeddedRedis, free_port
from core.ledger import open_ledger
from core.settings import Settings

SECRET_ENV = "CRMHUB_SOAK_STRIPE_SECRET"
CONFIG = """\
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: {secret_env}}}
    event_id: id
    event_type: type
connections:
  crm:
    connector: http
    base_url: {target}
mappings:
  customers:
    source: stripe
    when: {{event_type: customer.created}}
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      name: data.object.name
"""

PARTS = ("web", "worker", "beat", "redis", "target")


def stripe_event(n: int, customers: int, run: str) -> bytes:
    customer = n % customers
    event: dict[str, Any] = {
        "id": f"evt_soak_{run}_{n}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": "customer.created",
        "data": {
            "object": {
                "id": f"cus_{customer}",
                "object": "customer",
                "email": f"customer{customer}@example.com",
                "name": "Ada Lovelace",
                "description": "",
            }
        },
    }
    event["data"]["object"]["description"] = "x" * max(0, 1024 - len(json.dumps(event)))
    return json.dumps(event).encode()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """Stripe's scheme: HMAC-SHA256 of `{t}.{body}`."""
    t = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"}


class Sender:
    """POSTs events at a steady rate from a few threads; counts what was accepted."""

    def __init__(self, url: str, secret: str, rate: float, total: int, customers: int) -> None:
        self.url, self.secret, self.rate, self.total = url, secret, rate, total
        self.customers = customers
        self.run = secrets.token_hex(3)
        self.sent = 0
        self.failed = 0
        self._next = 0
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(6)]

    def start(self) -> None:
        self._began = time.monotonic()
        for t in self.threads:
            t.start()

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            n = self._next
            self._next += 1
        due = self._began + n / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return n

    def _send(self) -> None:
        with httpx.Client(timeout=30) as client:
            while (n := self._take()) is not None:
                body = stripe_event(n, self.customers, self.run)
                for _ in range(20):  # a sender retries a 503, as real ones do
                    try:
                        answer = client.post(
                            self.url, content=body, headers=signed_headers(body, self.secret)
                        )
                    except httpx.TransportError:
                        time.sleep(0.5)
                        continue
                    if answer.status_code < 300:
                        with self._lock:
                            self.sent += 1
                        break
                    time.sleep(0.5)
                else:
                    with self._lock:
                        self.failed += 1

    def done(self) -> bool:
        return not any(t.is_alive() for t in self.threads)


def group_rss(pid: int | None) -> int:
    """RSS of a process and all its descendants (bytes)."""
    if pid is None:
        return 0
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in (root, *root.children(recursive=True)))
    except psutil.Error:
        return 0


def archive_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT value FROM archive_counts WHERE name = 'events'").fetchone()
            return int(row[0]) if row else 0
    except sqlite3.Error:
        return -1


def text_plot(rows: list[dict[str, Any]], field: str, label: str, width: int = 60) -> str:
    """One bar per row (at most 30 rows, evenly spaced over the run)."""
    rows = rows[:: max(1, -(-len(rows) // 30))]
    values = [r[field] for r in rows]
    top = max(values) or 1
    lines = [f"{label} (max {top:,.1f}):"]
    for r, v in zip(rows, values, strict=True):
        lines.append(f"{r['t']:>7.0f}s |{'#' * round(v / top * width):<{width}}| {v:,.1f}")
    return "\n".join(lines)


def png_plot(rows: list[dict[str, Any]], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [r["t"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax1.plot(t, [r["redis_mb"] for r in rows], label="Redis used_memory (MB)")
    ax1.plot(t, [r["archived"] / 1000 for r in rows], label="archived (thousands)")
    ax1.legend()
    for part in ("web", "worker", "beat"):
        ax2.plot(t, [r[f"{part}_mb"] for r in rows], label=f"{part} RSS (MB)")
    ax2.set_xlabel("seconds")
    ax2.legend()
    fig.savefig(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--retention", type=int, default=30, help="CRMHUB_HOT_RETENTION_SECONDS")
    parser.add_argument("--customers", type=int, default=2000, help="distinct records")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between rows")
    parser.add_argument("--catch-up", type=float, default=300.0, help="max wait at the end")
    parser.add_argument("--archive-url", help="CRMHUB_ARCHIVE_URL (default SQLite in the run)")
    parser.add_argument("--plot", help="also write a PNG here (needs matplotlib)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="crmhub-soak-") as tmp:
            rows = soak(args, Path(tmp))
    except BenchError as exc:
        log(f"soak: {exc}")
        return 2
    except KeyboardInterrupt:
        log("soak: interrupted; everything started was stopped")
        return 130
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(text_plot(rows, "redis_mb", "Redis used_memory, MB"))
    for part in ("web", "worker", "beat"):
        print(text_plot(rows, f"{part}_mb", f"{part} RSS, MB"))
    if args.plot and png_plot(rows, args.plot):
        log(f"plot written to {args.plot}")
    return 0


def soak(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    server = EmbeddedRedis(tmp / "redis")
    url = server.start()
    services: dict[str, Service] = {}
    try:
        target_port = free_port()
        web_port = free_port()
        secret = secrets.token_hex(16)
        config = tmp / "crmhub.yaml"
        config.write_text(
            CONFIG.format(target=f"http://127.0.0.1:{target_port}", secret_env=SECRET_ENV)
        )
        env = {
            **os.environ,
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": url,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "CRMHUB_HOT_RETENTION_SECONDS": str(args.retention),
            "CRMHUB_WEB_WORKERS": "2",
            "CRMHUB_WORKER_CONCURRENCY": "2",
            SECRET_ENV: secret,
        }
        if args.archive_url:
            env["CRMHUB_ARCHIVE_URL"] = args.archive_url
        env.pop("CRMHUB_ACCESS_LOG", None)
        py = [sys.executable, "-m"]
        commands = {
            "target": [*py, "connectors.fakes.http", "--port", str(target_port)],
            "web": [
                *py,
                "gunicorn",
                "-c",
                "python:app.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{web_port}",
                "app.wsgi:app",
            ],
            "worker": celery_worker_command(
                "workers.celery_app", "crmhub.deliveries,crmhub.control", 2
            ),
            "beat": [
                *py,
                "celery",
                "-A",
                "workers.celery_app",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(tmp / "var" / "celerybeat-schedule"),
            ],
        }
        (tmp / "var").mkdir()
        for name, command in commands.items():
            services[name] = Service(
                name=name, args=command, env=env, cwd=REPO, log_path=tmp / f"{name}.log"
            )
            services[name].start()
        wait_http(services["web"], web_port, "/readyz", expect=200, timeout=60)
        settings = Settings.from_env(env)
        client = redis.Redis.from_url(url)
        ledger = open_ledger(settings, client)
        archive_path = tmp / "var" / "archive.sqlite3"
        sender = Sender(
            f"http://127.0.0.1:{web_port}/webhooks/stripe",
            secret,
            args.rate,
            args.events,
            args.customers,
        )
        log(
            f"soak: {args.events} events at {args.rate}/s, retention {args.retention} s, "
            f"{args.customers} records"
        )
        header = (
            f"{'t s':>7} {'sent':>9} {'redis MB':>9} {'keys':>9} {'hot done':>9} "
            f"{'lag s':>6} {'archived':>9} {'web MB':>7} {'worker MB':>9} {'beat MB':>8} "
            f"{'redis RSS':>9}"
        )
        print(header, flush=True)
        rows: list[dict[str, Any]] = []
        began = time.monotonic()
        sender.start()
        finished_at: float | None = None
        redis_pid = server.process.pid if server.process else None
        while True:
            time.sleep(args.every)
            for name, service in services.items():
                if not service.alive():
                    raise BenchError(f"{name} died:\n{service.log_tail()}")
            memory = ledger.memory()
            done = ledger.done_count()
            oldest = ledger.oldest_done_at()
            lag = max(0.0, time.time() - oldest - args.retention) if oldest else 0.0
            row = {
                "t": time.monotonic() - began,
                "sent": sender.sent,
                "failed": sender.failed,
                "redis_mb": memory["used"] / 2**20,
                "keys": int(client.dbsize()),
                "hot_done": done,
                "lag_s": lag,
                "archived": archive_rows(archive_path),
                "web_mb": group_rss(services["web"].proc.pid if services["web"].proc else None)
                / 2**20,
                "worker_mb": group_rss(
                    services["worker"].proc.pid if services["worker"].proc else None
                )
                / 2**20,
                "beat_mb": group_rss(services["beat"].proc.pid if services["beat"].proc else None)
                / 2**20,
                "redis_rss_mb": group_rss(redis_pid) / 2**20,
            }
            rows.append(row)
            print(
                f"{row['t']:>7.0f} {row['sent']:>9,} {row['redis_mb']:>9.1f} {row['keys']:>9,} "
                f"{row['hot_done']:>9,} {row['lag_s']:>6.0f} {row['archived']:>9,} "
                f"{row['web_mb']:>7.1f} {row['worker_mb']:>9.1f} {row['beat_mb']:>8.1f} "
                f"{row['redis_rss_mb']:>9.1f}",
                flush=True,
            )
            if finished_at is None and sender.done():
                finished_at = time.monotonic()
                log(f"soak: all sent ({sender.sent} accepted, {sender.failed} given up)")
            if finished_at is not None and (
                row["archived"] >= sender.sent
                or time.monotonic() - finished_at > args.retention + args.catch_up
            ):
                break
        return rows
    finally:
        for service in services.values():
            service.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
