"""A soak: many events at a steady rate through the whole hub (receiver, worker, beat, the
archive), with the hot retention compressed, watching memory over time.

What is measured
    A redis-server of its own (core.embedded_redis, as `crmhub serve` runs it), the fake
    HubSpot (connectors/fakes/hubspot/, batch upserts, no 10-second limit) as the target, and
    the Procfile's three processes: web (gunicorn), worker and beat, with the archive on SQLite
    under the run's directory (or `--archive-url`). Signed 1 KB Stripe `customer.created`
    events are POSTed at `--rate` events per second, `--batch` to a request (the source is
    `batch: true`, so each element is its own event: verified, deduplicated, recorded and
    routed like a lone one; with `--batch 1` one event per request), over `--customers`
    distinct customers (records), until `--events` were sent; then the run waits for the
    archive to catch up. Every `--every` seconds a row: events accepted, Redis used_memory and
    its key count, events done but still hot, archive lag, archive rows, and each process's
    RSS (its whole process group: gunicorn's workers, Celery's pool, Redis). At the end: the
    dedupe keys are deleted to measure what each costs (used_memory freed per key), every
    row's Redis figure is shown also without them (used - accepted x that), and the table is
    drawn as an SVG (`--plot FILE`; hand-written, no plotting package).

Compressed time
    A hub holds in Redis what arrived within the hot retention: rate x retention events (plus
    what waits for delivery). The soak keeps that product and shrinks time: `--retention 60`
    at 500 events/s holds the same 30,000 done events as a production hub with
    `CRMHUB_HOT_RETENTION_SECONDS=3600` taking 8.3 events/s (720,000 a day), and moves them
    out in the same batches (CRMHUB_ARCHIVE_BATCH_SIZE, every 10 s pass). What is not
    compressed: the dedupe window (CRMHUB_DEDUPE_TTL_SECONDS, 30 days), so every dedupe key
    of the run is still held at its end; that is why Redis memory is also shown without them.

    What should hold: Redis memory rises for the first `--retention` seconds, then stays flat
    (what arrives is archived as fast) apart from the dedupe keys (and per record its
    newest_wins timestamp: `--customers` of them); no process's RSS keeps growing.

Run it from the repository root, e.g. the 1,000,000-event run:
`nice .venv/bin/python bench/soak.py --events 1000000 --rate 500 --retention 60 --every 30
--plot bench/results/soak-1m.svg`.
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
from hubspot import FakeHubSpot
from pipeline import celery_worker_command

from core.embedded_redis import EmbeddedRedis, free_port
from core.errors import LedgerUnavailable
from core.ledger import open_ledger
from core.settings import Settings

SECRET_ENV = "CRMHUB_SOAK_STRIPE_SECRET"
TOKEN_ENV = "CRMHUB_SOAK_HUBSPOT_TOKEN"
CONFIG = """\
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: {secret_env}}}
    batch: true
    event_id: id
    event_type: type
    occurred_at: created
connections:
  hubspot:
    connector: hubspot
    base_url: {target}
    auth: {{type: bearer, token_env: {token_env}}}
mappings:
  customers:
    source: stripe
    when: {{event_type: customer.created}}
    connection: hubspot
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name]}}
"""
#: what a Stripe customer's free-text fields hold in the body (not one repeated character)
PROSE = (
    "Annual plan renewed after the spring review; invoices go to the finance mailbox, "
    "shipping to the warehouse on the north side. Prefers email over phone calls. "
)


def stripe_event(n: int, customers: int, run: str) -> dict[str, Any]:
    customer = n % customers
    event: dict[str, Any] = {
        "id": f"evt_soak_{run}_{n}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": "customer.created",
        "livemode": False,
        "data": {
            "object": {
                "id": f"cus_{customer:014d}",
                "object": "customer",
                "email": f"customer{customer}@example.com",
                "name": "Ada Lovelace",
                "phone": "+15555550100",
                "address": {"line1": "1 Main St", "city": "London", "postal_code": "N1 9GU"},
                "metadata": {"plan": "pro", "n": str(n)},
                "description": "",
            }
        },
    }
    room = max(0, 1024 - len(json.dumps(event)))
    event["data"]["object"]["description"] = (PROSE * 8)[:room]
    return event


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """Stripe's scheme: HMAC-SHA256 of `{t}.{body}`."""
    t = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"}


class Sender:
    """POSTs events at a steady rate (`batch` to a request) from a few threads; counts what
    was accepted. A refused request (503, a dropped connection) is sent again, as senders do."""

    def __init__(
        self,
        url: str,
        secret: str,
        rate: float,
        total: int,
        customers: int,
        batch: int,
        send_for: float | None = None,
    ) -> None:
        self.url, self.secret, self.rate, self.total = url, secret, rate, total
        self.send_for = send_for
        self.customers, self.batch = customers, batch
        self.run = secrets.token_hex(3)
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self._next = 0
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(6)]

    def start(self) -> None:
        self._began = time.monotonic()
        for t in self.threads:
            t.start()

    def _take(self) -> range | None:
        with self._lock:
            late = self.send_for is not None and time.monotonic() - self._began > self.send_for
            if self._next >= self.total or late:
                return None
            first = self._next
            self._next = end = min(self.total, first + self.batch)
        due = self._began + first / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return range(first, end)

    def _send(self) -> None:
        with httpx.Client(timeout=60) as client:
            while (numbers := self._take()) is not None:
                events = [stripe_event(n, self.customers, self.run) for n in numbers]
                body = json.dumps(events).encode()
                for _ in range(40):
                    try:
                        answer = client.post(
                            self.url, content=body, headers=signed_headers(body, self.secret)
                        )
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code < 300:
                        with self._lock:
                            self.sent += len(events)
                        break
                    with self._lock:
                        self.retried += 1
                    time.sleep(0.5)
                else:
                    with self._lock:
                        self.failed += len(events)

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


#: the plot's series: (row field, label, colour)
SERIES_MEMORY = (
    ("redis_mb", "Redis used_memory", "#c0392b"),
    ("redis_less_dedupe_mb", "Redis without the dedupe keys", "#e67e22"),
    ("archived_k", "archived events (thousands)", "#7f8c8d"),
)
SERIES_RSS = (
    ("web_mb", "web RSS (gunicorn + workers)", "#2980b9"),
    ("worker_mb", "worker RSS (Celery + pool)", "#27ae60"),
    ("beat_mb", "beat RSS", "#8e44ad"),
    ("redis_rss_mb", "redis-server RSS", "#c0392b"),
)


def _panel(
    rows: list[dict[str, Any]], series: tuple[tuple[str, str, str], ...], top: float, title: str
) -> list[str]:
    """One chart, 900 x 300, its origin at (60, top): polylines with a y axis and a legend."""
    width, height, left = 820.0, 240.0, 60.0
    t_max = max(r["t"] for r in rows) or 1.0
    y_max = max(max(r[field] for r in rows) for field, _, _ in series) or 1.0
    y_max *= 1.1
    out = [
        f'<text x="{left}" y="{top - 8}" font-size="14" font-weight="bold">{title}</text>',
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = top + height - height * i / 4
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{value:,.0f}</text>"
        )
    for i in range(6):
        t = t_max * i / 5
        x = left + width * i / 5
        out.append(
            f'<text x="{x:.1f}" y="{top + height + 16}" font-size="11" text-anchor="middle">'
            f"{t:,.0f} s</text>"
        )
    for n, (field, label, colour) in enumerate(series):
        points = " ".join(
            f"{left + width * r['t'] / t_max:.1f},{top + height - height * r[field] / y_max:.1f}"
            for r in rows
        )
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        y = top + 16 + 16 * n
        out.append(
            f'<rect x="{left + 10}" y="{y - 9}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{left + 28}" y="{y - 4}" font-size="12">{label}</text>'
        )
    return out


def svg_plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    """The run as an SVG: Redis memory (with and without the dedupe keys) and archived events
    over time, and every process's RSS."""
    if not rows:
        return
    rows = [{**r, "archived_k": max(0, r["archived"]) / 1000} for r in rows]
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="920" height="640" '
        'font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="460" y="22" font-size="15" text-anchor="middle">{title}</text>',
        *_panel(rows, SERIES_MEMORY, 60, "Redis memory (MB) and events archived (thousands)"),
        *_panel(rows, SERIES_RSS, 360, "RSS per process group (MB)"),
        "</svg>",
    ]
    Path(path).write_text("\n".join(parts) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument("--retention", type=int, default=60, help="CRMHUB_HOT_RETENTION_SECONDS")
    parser.add_argument("--customers", type=int, default=5000, help="distinct records")
    parser.add_argument(
        "--send-for", type=float, help="stop sending after this many seconds (before --events)"
    )
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery processes")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between rows")
    parser.add_argument("--catch-up", type=float, default=600.0, help="max wait at the end")
    parser.add_argument("--archive-url", help="CRMHUB_ARCHIVE_URL (default SQLite in the run)")
    parser.add_argument("--plot", help="also write the run as an SVG here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="crmhub-soak-") as tmp:
            rows, summary = soak(args, Path(tmp))
    except BenchError as exc:
        log(f"soak: {exc}")
        return 2
    except KeyboardInterrupt:
        log("soak: interrupted; everything started was stopped")
        return 130
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=2))
        return 0
    print(json.dumps(summary))
    print(text_plot(rows, "redis_mb", "Redis used_memory, MB"))
    print(text_plot(rows, "redis_less_dedupe_mb", "Redis used_memory without the dedupe keys, MB"))
    for part in ("web", "worker", "beat"):
        print(text_plot(rows, f"{part}_mb", f"{part} RSS, MB"))
    if args.plot:
        svg_plot(
            rows,
            args.plot,
            f"crmhub soak: {summary['accepted']:,} events at {args.rate:g}/s, hot retention "
            f"{args.retention} s (compressed 1 h)",
        )
        log(f"plot written to {args.plot}")
    return 0


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['t']:>7.0f} {row['sent']:>9,} {row['redis_mb']:>9.1f} {row['keys']:>9,} "
        f"{row['hot_done']:>9,} {row['lag_s']:>6.0f} {row['archived']:>9,} "
        f"{row['web_mb']:>7.1f} {row['worker_mb']:>9.1f} {row['beat_mb']:>8.1f} "
        f"{row['redis_rss_mb']:>9.1f}",
        flush=True,
    )


def dedupe_cost(client: redis.Redis, pattern: str) -> tuple[int, float]:
    """Delete every dedupe key (the run is over): how many, and used_memory freed per key."""
    before = int(client.info("memory")["used_memory"])
    count = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            count += int(client.unlink(*batch))
            batch = []
    if batch:
        count += int(client.unlink(*batch))
    time.sleep(1)  # UNLINK frees in the background
    freed = before - int(client.info("memory")["used_memory"])
    return count, (freed / count if count else 0.0)


def soak(args: argparse.Namespace, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    server = EmbeddedRedis(tmp / "redis")
    url = server.start()
    services: dict[str, Service] = {}
    token = secrets.token_hex(16)
    target = FakeHubSpot(tmp, token)
    try:
        target.service.start()
        target.wait_ready()
        web_port = free_port()
        secret = secrets.token_hex(16)
        config = tmp / "crmhub.yaml"
        config.write_text(
            CONFIG.format(target=target.url, secret_env=SECRET_ENV, token_env=TOKEN_ENV)
        )
        env = {
            **os.environ,
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": url,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "CRMHUB_HOT_RETENTION_SECONDS": str(args.retention),
            "CRMHUB_WEB_WORKERS": "2",
            "CRMHUB_WORKER_CONCURRENCY": str(args.worker_concurrency),
            SECRET_ENV: secret,
            TOKEN_ENV: token,
        }
        if args.archive_url:
            env["CRMHUB_ARCHIVE_URL"] = args.archive_url
        env.pop("CRMHUB_ACCESS_LOG", None)
        env.pop("CRMHUB_BROKER_URL", None)
        env.pop("CRMHUB_KEY_PREFIX", None)
        py = [sys.executable, "-m"]
        commands = {
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
                "workers.celery_app", "crmhub.deliveries,crmhub.control", args.worker_concurrency
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
        client = redis.Redis.from_url(url, socket_timeout=30)
        ledger = open_ledger(settings, client)
        archive_path = tmp / "var" / "archive.sqlite3"
        sender = Sender(
            f"http://127.0.0.1:{web_port}/webhooks/stripe",
            secret,
            args.rate,
            args.events,
            args.customers,
            args.batch,
            args.send_for,
        )
        log(
            f"soak: {args.events} events at {args.rate}/s ({args.batch} per request), "
            f"retention {args.retention} s, {args.customers} records"
        )
        print(
            f"{'t s':>7} {'accepted':>9} {'redis MB':>9} {'keys':>9} {'hot done':>9} "
            f"{'lag s':>6} {'archived':>9} {'web MB':>7} {'worker MB':>9} {'beat MB':>8} "
            f"{'redis RSS':>9}",
            flush=True,
        )
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
            try:
                memory = ledger.memory()
                done = ledger.done_count()
                oldest = ledger.oldest_done_at()
                keys = int(client.dbsize())
            except (LedgerUnavailable, redis.RedisError) as exc:
                # a loaded machine: Redis busy (its AOF rewrite forks a GB) past the timeout
                log(f"soak: no sample this time ({exc})")
                continue
            lag = max(0.0, time.time() - oldest - args.retention) if oldest else 0.0
            row = {
                "t": time.monotonic() - began,
                "sent": sender.sent,
                "failed": sender.failed,
                "redis_mb": memory["used"] / 2**20,
                "keys": keys,
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
            print_row(row)
            if finished_at is None and sender.done():
                finished_at = time.monotonic()
                log(f"soak: all sent ({sender.sent} accepted, {sender.failed} given up)")
            if finished_at is not None and (
                row["archived"] >= sender.sent
                or time.monotonic() - finished_at > args.retention + args.catch_up
            ):
                break
        keys_left = int(client.dbsize())
        dedupe_keys, per_key = dedupe_cost(client, ledger.keys.dedupe("*"))
        after = int(client.info("memory")["used_memory"])
        for row in rows:
            row["redis_less_dedupe_mb"] = row["redis_mb"] - row["sent"] * per_key / 2**20
        counts: dict[bytes, bytes] = client.hgetall(ledger.keys.counts("hubspot"))  # type: ignore[assignment]
        summary = {
            "accepted": sender.sent,
            "given_up": sender.failed,
            "requests_retried": sender.retried,
            "archived": rows[-1]["archived"] if rows else 0,
            "deliveries_by_state": {k.decode(): int(v) for k, v in counts.items()},
            "seconds": round(rows[-1]["t"]) if rows else 0,
            "keys_left_at_end": keys_left,
            "dedupe_keys": dedupe_keys,
            "dedupe_bytes_freed_per_key": round(per_key),
            "redis_used_mb_without_dedupe_keys_at_end": round(after / 2**20, 1),
            "target_api_calls": target.get("/_control/stats").get("api_calls"),
        }
        return rows, summary
    finally:
        for service in services.values():
            service.stop()
        target.service.stop()
        target.close()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
