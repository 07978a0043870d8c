"""Dynamics 365 drain: a backlog of N events delivered to the fake Dataverse, batching on and
off, contacts alone and contacts with their accounts.

What is measured
    N (`--events`, 10,000) Stripe-shaped `customer.created` events, each its own person
    (distinct email: distinct record key and contact), working at one of `--companies` (500)
    companies, are recorded while no worker runs; then the hub's Celery worker (prefork,
    CRMHUB_WORKER_CONCURRENCY, default 2, the Procfile's command) drains them into the fake
    Dataverse (connectors/fakes/dynamics/) through connectors/dynamics.py. Modes, in one
    invocation:

    contacts, batching on      `$batch` of up to `--batch-size` (100) change sets, one record
                               each (the worker claims a delivery and the waiting deliveries
                               of the connection and object to fill it)
    contacts, batching off     `options: {batch_size: 1}`: one upsert request per record
    + accounts, batching on    the mapping also has `related: parentcustomerid_account@odata.bind`
                               (find the person's company's account by its alternate key, or
                               create it, then bind the contact to it)

    Per mode: events/s = N / (first claim -> last delivered), both from the ledger; Dataverse
    API calls per event = the fake's `api_calls` (a $batch counts one; token requests
    excluded) / N. Targets (issue 15): at most 0.05 calls per event for contacts, 0.1 with
    their accounts. The batching-off run is the baseline the speed ratio is taken against
    (same run, same machine).

Method
    The backlog is recorded through the hub's own intake and ledger code (app.runtime.build_hub,
    core.intake.build_events, Ledger.accept in chunks of 200), as bench/salesforce.py does. Each
    mode gets a fresh key prefix and a reset fake. A run is valid when every event was
    delivered, the fake holds N contacts (and the expected accounts), saw no request Dataverse
    would refuse, and there is no dead letter; otherwise exit status 1 (2: could not set up;
    130: interrupted).

`--json` prints one object: `crm`, `events`, `api_calls`, `calls_per_event` and
`events_per_second` of the headline mode (contacts, batching on), every mode under `results`.
Run it from the repository root: `.venv/bin/python bench/dynamics.py [--events N] [--json]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import secrets
import sys
import time
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
    log,
    running,
)
from hubspot import cleanup, worker_command

from app.runtime import build_hub
from core.intake import build_events
from core.ledger.keys import LedgerKeys
from core.ledger.model import NewEvent
from core.ledger.views import decode
from core.settings import Settings

TARGETS = {False: 0.05, True: 0.1}  # calls per event: contacts / with their accounts
CONNECTION = "dynamics"
RECORD_CHUNK = 200
LISTENING = re.compile(r"fake dynamics listening on (http://[\d.]+:\d+)")
TENANT = "00000000-0000-0000-0000-0000000000aa"
DYN = {"DYNAMICS_CLIENT_ID": "bench-client", "DYNAMICS_CLIENT_SECRET": "bench-secret"}

HUB_CONFIG = """\
# written by bench/dynamics.py: Stripe-shaped customers -> Dynamics 365 contacts
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: CRMHUB_BENCH_STRIPE_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: dynamics
    base_url: {url}
    auth: {{type: client_credentials, token_url: "{url}/{tenant}/oauth2/v2.0/token",
            client_id_env: DYNAMICS_CLIENT_ID, client_secret_env: DYNAMICS_CLIENT_SECRET}}
    alternate_keys: {{contacts: [emailaddress1], accounts: [name]}}
    options: {{batch_size: {batch_size}}}
mappings:
  customer-to-contact:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: {connection}
    object: contacts
    match: {{field: emailaddress1, from: data.object.email, normalize: email}}
    fields:
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name], required: true}}
      emailaddress1: {{from: data.object.email, transform: [email]}}
      jobtitle: {{from: data.object.metadata.title, owner: target}}
{related}"""
RELATED = """\
    related:
      parentcustomerid_account@odata.bind: {object: accounts, match: {field: name,
          from: data.object.metadata.company, normalize: strip},
          fields: {name: data.object.metadata.company}}
"""


@dataclass(frozen=True)
class Options:
    events: int
    companies: int
    batch_size: int
    concurrency: int
    stall_timeout: float
    embedded_redis: bool
    json: bool


@dataclass(frozen=True)
class Mode:
    label: str
    accounts: bool
    batch_size: int


class FakeDynamics:
    """The fake Dataverse (with its Entra ID token endpoint) as its own process."""

    def __init__(self, tmp: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "connectors.fakes.dynamics",
            "--port",
            "0",
            "--tenant",
            TENANT,
            "--client-id",
            DYN["DYNAMICS_CLIENT_ID"],
            "--client-secret",
            DYN["DYNAMICS_CLIENT_SECRET"],
        ]
        self.log_path = tmp / "fake-dynamics.log"
        self.service = Service("fake dynamics", command, dict(os.environ), REPO, self.log_path)
        self.url = ""
        self.http = httpx.Client(timeout=30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                return
            time.sleep(0.05)
        raise BenchError(f"the fake Dynamics did not start (see {self.log_path})")

    def control(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.http.request(method, f"{self.url}/_control/{route}", **kwargs).json()


def body(n: int, companies: int, created: int) -> dict[str, Any]:
    return {
        "id": f"evt_bench_{n:06d}",
        "type": "customer.created",
        "created": created,
        "data": {
            "object": {
                "email": f"Person{n:06d}@Example.com",
                "name": f"Bench Person{n:06d}",
                "metadata": {"title": "Engineer", "company": f"Company {n % companies:04d}"},
            }
        },
    }


def record_backlog(env: dict[str, str], opts: Options) -> int:
    hub = build_hub(Settings.from_env(env))
    receiver = hub.receivers["stripe"]
    created = int(time.time())
    recorded = 0
    try:
        for first in range(0, opts.events, RECORD_CHUNK):
            now = time.time()
            events: list[NewEvent] = []
            for n in range(first, min(first + RECORD_CHUNK, opts.events)):
                event = body(n, opts.companies, created)
                events += build_events(
                    receiver.source, receiver.mappings, {}, {}, json.dumps(event), event, now
                )
            hub.ledger.accept(events, now)
            recorded += len(events)
    finally:
        hub.ledger.redis.close()
    return recorded


def drain_facts(client: redis.Redis, prefix: str) -> tuple[dict[str, int], float | None]:
    keys = LedgerKeys(prefix)
    counts = {k: int(v) for k, v in decode(client.hgetall(keys.counts(CONNECTION))).items()}
    success = client.hget(keys.last(CONNECTION), "success_at")
    return counts, float(success) / 1000 if success else None


def run_mode(
    mode: Mode, opts: Options, tmp: Path, rds: BenchRedis, fake: FakeDynamics, prefixes: list[str]
) -> dict[str, Any]:
    prefix = f"crmhub-bench-dyn-{secrets.token_hex(4)}"
    prefixes.append(prefix)
    fake.control("POST", "reset")
    config = tmp / f"{prefix}.yaml"
    config.write_text(
        HUB_CONFIG.format(
            connection=CONNECTION,
            url=fake.url,
            tenant=TENANT,
            batch_size=mode.batch_size,
            related=RELATED if mode.accounts else "",
        )
    )
    env = {
        **os.environ,
        **DYN,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": rds.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp / "var"),
        "CRMHUB_WORKER_CONCURRENCY": str(opts.concurrency),
        "CRMHUB_BENCH_STRIPE_SECRET": "whsec_" + secrets.token_hex(8),
    }
    env.pop("CRMHUB_BROKER_URL", None)
    log(f"{mode.label}: recording {opts.events} events")
    record_backlog(env, opts)
    client = redis.Redis.from_url(rds.url)
    worker = Service(
        f"worker ({mode.label})",
        worker_command(prefix, opts.concurrency),
        env,
        REPO,
        tmp / f"worker-{prefix}.log",
    )
    started = time.monotonic()
    last_progress, last_done = started, -1
    try:
        with running(worker):
            while True:
                counts, _ = drain_facts(client, prefix)
                done = sum(counts.get(s, 0) for s in ("delivered", "dead", "superseded"))
                if done >= opts.events:
                    break
                if done != last_done:
                    last_progress, last_done = time.monotonic(), done
                elif time.monotonic() - last_progress > opts.stall_timeout:
                    raise BenchError(f"{mode.label}: no progress for {opts.stall_timeout} s")
                time.sleep(0.2)
        counts, last_success = drain_facts(client, prefix)
        firsts = []
        for key in client.scan_iter(match=f"{prefix}:dlv:*", count=2000):
            if key.count(b":") == 2:
                at = client.hget(key, "first_attempt_at")
                if at:
                    firsts.append(float(at) / 1000)
        first_claim = min(firsts) if firsts else None
    finally:
        client.close()
    stats = fake.control("GET", "stats")
    seconds = (last_success - first_claim) if first_claim and last_success else None
    accounts_expected = min(opts.companies, opts.events) if mode.accounts else 0
    valid = (
        counts.get("delivered", 0) == opts.events
        and stats["records"].get("contacts") == opts.events
        and stats["records"].get("accounts", 0) == accounts_expected
        and stats["violations"] == 0
    )
    result = {
        "mode": mode.label,
        "accounts": mode.accounts,
        "batch_size": mode.batch_size,
        "events": opts.events,
        "delivered": counts.get("delivered", 0),
        "dead": counts.get("dead", 0),
        "seconds": round(seconds, 2) if seconds else None,
        "events_per_second": round(opts.events / seconds, 1) if seconds else None,
        "api_calls": stats["api_calls"],
        "calls_per_event": round(stats["api_calls"] / opts.events, 4),
        "token_requests": stats["token_requests"],
        "by_endpoint": stats["by_endpoint"],
        "contacts": stats["records"].get("contacts"),
        "accounts_made": stats["records"].get("accounts", 0),
        "valid": valid,
    }
    log(
        f"  {mode.label}: {result['events_per_second']} events/s, "
        f"{result['calls_per_event']} API calls per event, valid={valid}"
    )
    return result


def bench(opts: Options, tmp: Path, rds: BenchRedis) -> list[dict[str, Any]]:
    (tmp / "var").mkdir(exist_ok=True)
    fake = FakeDynamics(tmp)
    prefixes: list[str] = []
    modes = [
        Mode("contacts, batching on", False, opts.batch_size),
        Mode("contacts, batching off", False, 1),
        Mode("+ accounts, batching on", True, opts.batch_size),
    ]
    log(f"Redis: {rds.origin} ({rds.persistence}); logs in {tmp}")
    try:
        with cleanup(rds.url, prefixes), running(fake.service):
            fake.wait_ready()
            log(f"fake Dynamics on {fake.url}")
            return [run_mode(mode, opts, tmp, rds, fake, prefixes) for mode in modes]
    finally:
        fake.http.close()


def summarize(opts: Options, results: list[dict[str, Any]], rds: BenchRedis) -> dict[str, Any]:
    on, off, accounts = results
    speedup = (
        round(on["events_per_second"] / off["events_per_second"], 1)
        if on["events_per_second"] and off["events_per_second"]
        else None
    )
    targets_met = (
        on["calls_per_event"] <= TARGETS[False] and accounts["calls_per_event"] <= TARGETS[True]
    )
    return {
        "crm": "dynamics",
        "events": opts.events,
        "api_calls": on["api_calls"],
        "calls_per_event": on["calls_per_event"],
        "events_per_second": on["events_per_second"],
        "companies": opts.companies,
        "batch_size": opts.batch_size,
        "concurrency": opts.concurrency,
        "redis": rds.origin,
        "results": results,
        "speedup_batching_on_vs_off": speedup,
        "targets_calls_per_event": {"contacts": TARGETS[False], "with accounts": TARGETS[True]},
        "targets_met": targets_met,
        "valid": all(r["valid"] for r in results),
    }


def print_report(summary: dict[str, Any]) -> None:
    print(
        f"Dynamics 365 drain: {summary['events']} events ({summary['companies']} companies), "
        f"$batch of {summary['batch_size']}, worker concurrency {summary['concurrency']}, "
        f"Redis {summary['redis']}"
    )
    print(f"{'mode':28} {'events/s':>9} {'calls/event':>12} {'contacts':>9} {'accounts':>9}")
    for r in summary["results"]:
        print(
            f"{r['mode']:28} {r['events_per_second'] or '-':>9} {r['calls_per_event']:>12} "
            f"{r['contacts']:>9} {r['accounts_made']:>9}{'' if r['valid'] else '  INVALID'}"
        )
    print(f"batching on vs off (events/s): {summary['speedup_batching_on_vs_off']}x")
    print(
        f"targets (calls per event, batching on): {summary['targets_calls_per_event']}: "
        f"{'met' if summary['targets_met'] else 'NOT met'}"
    )


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Drain a backlog into the fake Dynamics 365, batching on and off: events/s "
        "and Dataverse API calls per event, for contacts and for contacts with accounts."
    )
    parser.add_argument("--events", type=int, default=10000, help="backlog size (10000)")
    parser.add_argument("--companies", type=int, default=500, help="distinct companies (500)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="records per $batch, 1-1000 (100)"
    )
    parser.add_argument(
        "--stall-timeout", type=float, default=120.0, help="give up after this long idle (120 s)"
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    if ns.events < 1 or ns.companies < 1:
        parser.error("--events and --companies must be positive")
    if not 1 <= ns.batch_size <= 1000:
        parser.error("--batch-size must be 1 to 1000")
    return Options(
        events=ns.events,
        companies=ns.companies,
        batch_size=ns.batch_size,
        concurrency=int(os.environ.get("CRMHUB_WORKER_CONCURRENCY") or 2),
        stall_timeout=ns.stall_timeout,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    return bench_main(
        "bench/dynamics.py",
        "crmhub-bench-dynamics-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, opts),
        summarize=functools.partial(summarize, opts),
        report=lambda summary, _results: print_report(summary),
    )


if __name__ == "__main__":
    sys.exit(main())
