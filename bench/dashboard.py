"""The dashboard's dead-letter page with 10,000 dead letters, against a bare Flask page.

What is measured
    hub: GET /ui/dead-letters (a signed-in session, the first page of 50) rendered by the real
    app (create_app, in this process through its WSGI interface, no network) over a real Redis
    holding 10,000 dead letters (accepted, claimed and finished dead by the ledger's own
    scripts); the same page filtered by connection and category, a search by email (`q`), and
    the API's GET /api/v1/dead-letters. bare: a Flask page in the same process making one Redis
    call (ZCARD) and rendering a one-line template. Wall time per request, median and p90 over
    `--requests`; ratio = bare / hub (the share of the hub's time a bare page would take).

    The target: under 300 ms for the page with 10,000 dead letters. It holds because a page
    is one range of a sorted set in the ledger (core/ledger/pages.py) and the rows' fields in
    one pipelined round trip, whatever the ledger holds; nothing is listed in Python.

Run it from the repository root: `.venv/bin/python bench/dashboard.py [--dead 10000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask import Flask, render_template_string

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import bench_redis, delete_prefix, log

from app import create_app
from core.config import load_config
from core.intake import build_events
from core.ledger import open_ledger
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory

TARGET_MS = 300.0
TOKEN = secrets.token_hex(16)
CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
connections:
  crm: {connector: http, base_url: "http://127.0.0.1:9/api"}
  erp: {connector: http, base_url: "http://127.0.0.1:9/erp"}
mappings:
  to-crm:
    source: stripe
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email}
    fields: {email: data.object.email}
  to-erp:
    source: stripe
    connection: erp
    object: accounts
    match: {field: email, from: data.object.email}
    fields: {email: data.object.email}
"""


def seed(settings: Settings, dead: int) -> None:
    """`dead` dead letters, most of crm (rejected), every tenth of erp (retries exhausted)."""
    config = load_config(settings.config_path, settings.environ)
    ledger = open_ledger(settings)
    now = time.time()
    for start in range(0, dead, 200):
        events = []
        for n in range(start, min(dead, start + 200)):
            body = {
                "id": f"evt_bench_{n}",
                "type": "customer.updated",
                "data": {"object": {"email": f"person{n}@example.com", "erp": n % 10 == 0}},
            }
            source = config.sources["stripe"]
            mappings = [
                m for m in config.mappings_for("stripe") if (n % 10 == 0) == (m.connection == "erp")
            ]
            events += build_events(source, tuple(mappings), {}, {}, json.dumps(body), body, now)
        ledger.accept(events, now)
        for event in events:
            for d in event.deliveries:
                ledger.claim(d.id, token="t", now=now, lease_seconds=60)
                erp = d.connection == "erp"
                ledger.finish(
                    d.id,
                    token="t",
                    now=now,
                    outcome=AttemptOutcome.DEAD,
                    attempt={"at": now, "outcome": "dead", "status": 422},
                    category=DeadCategory.RETRIES_EXHAUSTED
                    if erp
                    else DeadCategory.REJECTED_BY_TARGET,
                    error="target rejected the record (HTTP 422)",
                    dead_letter={"record": {"email": "x"}},
                )
        if start % 2000 == 0:
            log(f"  seeded {start + 200} of {dead}")


def timed(call: Callable[[], int], requests: int) -> dict[str, float]:
    call()  # warm (templates compiled, connections open)
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        status = call()
        times.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise SystemExit(f"bench/dashboard.py: a request answered {status}")
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(len(times) * 0.9) - 1]}


def bare_app(url: str, key: str) -> Flask:
    app = Flask("bare")
    client = redis.Redis.from_url(url)

    @app.get("/page")
    def page() -> str:
        return render_template_string("<p>{{ n }} dead letters</p>", n=client.zcard(key))

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dead", type=int, default=10_000, help="dead letters to seed")
    parser.add_argument("--requests", type=int, default=40, help="requests per page measured")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-dashboard-") as tmp_name:
        tmp = Path(tmp_name)
        with bench_redis(tmp) as rds:
            prefix = f"crmhub-bench-ui-{secrets.token_hex(4)}"
            (tmp / "crmhub.yaml").write_text(CONFIG)
            settings = Settings.from_env(
                {
                    "CRMHUB_CONFIG": str(tmp / "crmhub.yaml"),
                    "CRMHUB_REDIS_URL": rds.url,
                    "CRMHUB_KEY_PREFIX": prefix,
                    "CRMHUB_OPERATOR_TOKEN": TOKEN,
                    "STRIPE_WEBHOOK_SECRET": "whsec_bench_0123456789",
                    "PATH": os.environ.get("PATH", ""),
                }
            )
            try:
                log(f"seeding {args.dead} dead letters in {rds.origin} ...")
                began = time.perf_counter()
                seed(settings, args.dead)
                log(f"  done in {time.perf_counter() - began:.1f} s")
                results = measure(settings, rds.url, prefix, args.requests)
                listed = listed_total(settings)
            finally:
                delete_prefix(rds.url, prefix)
    summary = {
        "dead_letters": args.dead,
        "listed_as_total": listed,
        "target_ms": TARGET_MS,
        "pages": results,
        "valid": results["hub: /ui/dead-letters"]["median_ms"] < TARGET_MS and listed == args.dead,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        report(summary)
    return 0 if summary["valid"] else 1


def listed_total(settings: Settings) -> int:
    """How many dead letters the API says there are (the seed did what it says)."""
    answer = (
        create_app(settings)
        .test_client()
        .get("/api/v1/dead-letters", headers={"Authorization": f"Bearer {TOKEN}"})
    )
    return int(answer.get_json()["total"])


def measure(
    settings: Settings, url: str, prefix: str, requests: int
) -> dict[str, dict[str, float]]:
    hub = create_app(settings).test_client()
    login = hub.get("/ui/login").get_data(as_text=True)
    csrf = login.split('name="csrf" value="')[1].split('"')[0]
    assert hub.post("/ui/login", data={"token": TOKEN, "csrf": csrf}).status_code == 302
    bare = bare_app(url, f"{prefix}:idx:dead").test_client()
    api = {"Authorization": f"Bearer {TOKEN}"}
    pages: dict[str, Callable[[], int]] = {
        "bare: one Redis call + a template": lambda: bare.get("/page").status_code,
        "hub: /ui/dead-letters": lambda: hub.get("/ui/dead-letters").status_code,
        "hub: /ui/dead-letters?connection=erp&category=retries_exhausted": lambda: (
            hub.get("/ui/dead-letters?connection=erp&category=retries_exhausted").status_code
        ),
        "hub: /ui/dead-letters?q=person5000@example.com": lambda: (
            hub.get("/ui/dead-letters?q=person5000@example.com").status_code
        ),
        "hub: /api/v1/dead-letters": lambda: (
            hub.get("/api/v1/dead-letters", headers=api).status_code
        ),
    }
    results: dict[str, dict[str, float]] = {}
    for name, call in pages.items():
        results[name] = timed(call, requests)
        log(f"  {name}: median {results[name]['median_ms']:.1f} ms")
    base = results["bare: one Redis call + a template"]["median_ms"]
    for figures in results.values():
        figures["ratio"] = base / figures["median_ms"]
    return results


def report(summary: dict) -> None:
    print(
        f"dead-letter pages over {summary['dead_letters']:,} dead letters (50 rows a page; "
        f"the list says {summary['listed_as_total']:,} in all)"
    )
    for name, f in summary["pages"].items():
        figures = f"median {f['median_ms']:7.1f} ms  p90 {f['p90_ms']:7.1f} ms"
        print(f"  {name:<66} {figures}  ratio {f['ratio']:.3f}")
    verdict = "under" if summary["valid"] else "NOT under"
    n = summary["dead_letters"]
    print(f"the page with {n:,} dead letters renders {verdict} {summary['target_ms']:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
