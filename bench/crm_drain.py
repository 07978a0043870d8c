"""What every CRM's drain benchmark shares (bench/salesforce.py, zoho.py, dynamics.py,
pipedrive.py): the vendor's fake as its own process, a backlog recorded through the hub's own
intake and ledger code, a worker started to drain it, and the figures read back from the
ledger and the fake. A CRM's bench says only what is its own: the fake's flags, the hub
configuration, the objects' names, the targets.

The batching benches (Salesforce, Zoho, Dynamics) are whole here (`batching_main`): modes
batching on and off, Contacts alone and with their Accounts; Pipedrive, whose figure is about
records already seen rather than batching, uses the pieces.
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
from collections.abc import Callable
from dataclasses import dataclass, field
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
    hub_env,
    log,
    running,
)
from hubspot import cleanup, worker_command

from app.runtime import build_hub
from core.intake import build_events
from core.ledger import deliveries
from core.ledger.deliveries import folded_id
from core.ledger.keys import LedgerKeys
from core.ledger.model import NewEvent
from core.ledger.views import decode
from core.settings import Settings

RECORD_CHUNK = 200  # events per Ledger.accept, as the receiver's batches
DONE_STATES = ("delivered", "dead", "superseded")


class FakeCrm:
    """A vendor's fake (`python -m connectors.fakes.<slug>`) as its own process on a free
    port; `control` talks to its /_control routes (reset, stats, records...)."""

    def __init__(self, slug: str, title: str, args: list[str], tmp: Path) -> None:
        command = [sys.executable, "-m", f"connectors.fakes.{slug}", "--port", "0", *args]
        self.title = title
        self.log_path = tmp / f"fake-{slug}.log"
        self.service = Service(f"fake {slug}", command, dict(os.environ), REPO, self.log_path)
        self.listening = re.compile(rf"fake {slug} listening on (http://[\d.]+:\d+)")
        self.url = ""
        self.http = httpx.Client(timeout=30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            match = self.listening.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                log(f"fake {self.title} on {self.url}")
                return
            time.sleep(0.05)
        raise BenchError(f"the fake {self.title} did not start (see {self.log_path})")

    def control(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.http.request(method, f"{self.url}/_control/{route}", **kwargs).json()


def record_backlog(env: dict[str, str], events: int, body: Callable[[int], dict[str, Any]]) -> int:
    """Record `events` Stripe events (`body(n)`) through the hub's own intake and ledger code,
    as the receiver would, while no worker runs."""
    hub = build_hub(Settings.from_env(env))
    receiver = hub.receivers["stripe"]
    recorded = 0
    try:
        for first in range(0, events, RECORD_CHUNK):
            now = time.time()
            chunk: list[NewEvent] = []
            for n in range(first, min(first + RECORD_CHUNK, events)):
                event = body(n)
                chunk += build_events(
                    receiver.source, receiver.mappings, {}, {}, json.dumps(event), event, now
                )
            hub.ledger.accept(chunk, now)
            recorded += len(chunk)
    finally:
        hub.ledger.redis.close()
    return recorded


def drain_facts(
    client: redis.Redis, prefix: str, connection: str
) -> tuple[dict[str, int], float | None]:
    """The connection's deliveries by state, and its last success (s), from the ledger."""
    keys = LedgerKeys(prefix)
    counts = {k: int(v) for k, v in decode(client.hgetall(keys.counts(connection))).items()}
    success = client.hget(keys.last(connection), "success_at")
    return counts, float(success) / 1000 if success else None


def first_claim_since(client: redis.Redis, prefix: str, since: float = 0.0) -> float | None:
    """The earliest first attempt (s) among the deliveries first tried at or after `since`
    (an event's first delivery is held in its event's hash: core/ledger/deliveries.py)."""
    keys = LedgerKeys(prefix)
    ids = [
        key.decode().rsplit(":", 1)[1]
        for key in client.scan_iter(match=f"{prefix}:dlv:*", count=2000)
        if key.count(b":") == 2
    ] + [
        folded_id(key.decode().rsplit(":", 1)[1])
        for key in client.scan_iter(match=f"{prefix}:evt:*", count=2000)
        if key.count(b":") == 2
    ]
    firsts = [
        float(at) / 1000
        for (at,) in deliveries.read_fields(client, keys, ids, ["first_attempt_at"])
        if at and float(at) / 1000 >= since
    ]
    return min(firsts) if firsts else None


@dataclass
class Drained:
    counts: dict[str, int]
    seconds: float | None  # first claim -> last success

    def rate(self, events: int) -> float | None:
        return round(events / self.seconds, 1) if self.seconds else None


def drain(
    label: str,
    env: dict[str, str],
    rds: BenchRedis,
    tmp: Path,
    connection: str,
    expected_done: int,
    stall_timeout: float,
) -> Drained:
    """Start the hub's worker (the Procfile's command) and wait until `expected_done`
    deliveries of the connection are done; give up after `stall_timeout` without progress."""
    prefix = env["CRMHUB_KEY_PREFIX"]
    concurrency = int(env["CRMHUB_WORKER_CONCURRENCY"])
    worker = Service(
        f"worker ({label})",
        worker_command(prefix, concurrency),
        env,
        REPO,
        tmp / f"worker-{prefix}-{label.replace(' ', '-').replace(',', '')}.log",
    )
    client = redis.Redis.from_url(rds.url)
    since = time.time()
    last_progress, last_done = time.monotonic(), -1
    try:
        with running(worker):
            while True:
                counts, _ = drain_facts(client, prefix, connection)
                done = sum(counts.get(s, 0) for s in DONE_STATES)
                if done >= expected_done:
                    break
                if done != last_done:
                    last_progress, last_done = time.monotonic(), done
                elif time.monotonic() - last_progress > stall_timeout:
                    raise BenchError(f"{label}: no progress for {stall_timeout} s")
                time.sleep(0.2)
        counts, last_success = drain_facts(client, prefix, connection)
        first_claim = first_claim_since(client, prefix, since)
    finally:
        client.close()
    seconds = (last_success - first_claim) if first_claim and last_success else None
    return Drained(counts, seconds)


def stripe_customer(n: int, companies: int, created: int) -> dict[str, Any]:
    """A Stripe-shaped `customer.created` event: person n (distinct email, hence its own
    record key and CRM record) at one of `companies` companies."""
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


# --- the batching benches: Salesforce, Zoho CRM, Dynamics 365 ------------------------------


@dataclass(frozen=True)
class BatchingCrm:
    """What one batching CRM's bench says of itself."""

    slug: str  # the fake's module and the bench's file name
    title: str
    fake_args: tuple[str, ...]
    #: the hub's configuration; placeholders {connection}, {url}, {batch_size}, {related}
    hub_config: str
    related: str  # the mapping's `related:` block, for the modes with Accounts
    contacts: str  # the fake's object names, as its stats count records
    accounts: str
    batch_size: int  # batching on
    targets: dict[str, float]  # calls per event, batching on: "contacts", "with accounts"
    credentials: dict[str, str] = field(default_factory=dict)
    #: OAuth2 with a refresh token: told to the fake, read by the hub from this variable
    refresh_token_env: str | None = None
    refresh_token_prefix: str = "bench-refresh-"
    #: the "+ accounts, batching off" mode (slow: one request per record and per account)
    accounts_batching_off: bool = True


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


def modes(crm: BatchingCrm, opts: Options) -> list[Mode]:
    found = [
        Mode("contacts, batching on", False, opts.batch_size),
        Mode("contacts, batching off", False, 1),
        Mode("+ accounts, batching on", True, opts.batch_size),
    ]
    if crm.accounts_batching_off:
        found.append(Mode("+ accounts, batching off", True, 1))
    return found


def run_mode(
    crm: BatchingCrm,
    mode: Mode,
    opts: Options,
    tmp: Path,
    rds: BenchRedis,
    fake: FakeCrm,
    prefixes: list[str],
) -> dict[str, Any]:
    prefix = f"crmhub-bench-{crm.slug}-{secrets.token_hex(4)}"
    prefixes.append(prefix)  # its keys are deleted at the end of the run
    fake.control("POST", "reset")
    extra = dict(crm.credentials)
    if crm.refresh_token_env:
        refresh = crm.refresh_token_prefix + secrets.token_hex(8)
        fake.control("POST", "refresh-token", json={"refresh_token": refresh})
        extra[crm.refresh_token_env] = refresh
    config = tmp / f"{prefix}.yaml"
    config.write_text(
        crm.hub_config.format(
            connection=crm.slug,
            url=fake.url,
            batch_size=mode.batch_size,
            related=crm.related if mode.accounts else "",
        )
    )
    extra["CRMHUB_BENCH_STRIPE_SECRET"] = "whsec_" + secrets.token_hex(8)
    env = hub_env(rds, prefix, tmp, config, opts.concurrency, **extra)
    log(f"{mode.label}: recording {opts.events} events")
    created = int(time.time())
    record_backlog(env, opts.events, lambda n: stripe_customer(n, opts.companies, created))
    drained = drain(
        mode.label, env, rds, tmp, crm.slug, opts.events, stall_timeout=opts.stall_timeout
    )
    stats = fake.control("GET", "stats")
    accounts_expected = min(opts.companies, opts.events) if mode.accounts else 0
    contacts = stats["records"].get(crm.contacts)
    accounts = stats["records"].get(crm.accounts, 0)
    result = {
        "mode": mode.label,
        "accounts": mode.accounts,
        "batch_size": mode.batch_size,
        "events": opts.events,
        "delivered": drained.counts.get("delivered", 0),
        "dead": drained.counts.get("dead", 0),
        "seconds": round(drained.seconds, 2) if drained.seconds else None,
        "events_per_second": drained.rate(opts.events),
        "api_calls": stats["api_calls"],
        "calls_per_event": round(stats["api_calls"] / opts.events, 4),
        "token_requests": stats.get("token_requests"),
        "by_endpoint": stats.get("by_endpoint"),
        "contacts": contacts,
        "accounts_made": accounts,
        "valid": drained.counts.get("delivered", 0) == opts.events
        and contacts == opts.events
        and accounts == accounts_expected
        and stats["violations"] == 0,
    }
    log(
        f"  {mode.label}: {result['events_per_second']} events/s, "
        f"{result['calls_per_event']} API calls per event, valid={result['valid']}"
    )
    return result


def bench(crm: BatchingCrm, opts: Options, tmp: Path, rds: BenchRedis) -> list[dict[str, Any]]:
    (tmp / "var").mkdir(exist_ok=True)
    fake = FakeCrm(crm.slug, crm.title, list(crm.fake_args), tmp)
    prefixes: list[str] = []
    log(f"Redis: {rds.origin} ({rds.persistence}); logs in {tmp}")
    try:
        with cleanup(rds.url, prefixes), running(fake.service):
            fake.wait_ready()
            return [
                run_mode(crm, mode, opts, tmp, rds, fake, prefixes) for mode in modes(crm, opts)
            ]
    finally:
        fake.http.close()


def summarize(
    crm: BatchingCrm, opts: Options, results: list[dict[str, Any]], rds: BenchRedis
) -> dict[str, Any]:
    by = {(r["accounts"], r["batch_size"] > 1): r for r in results}
    speedup = {}
    for accounts, name in ((False, "contacts"), (True, "with accounts")):
        on, off = by.get((accounts, True)), by.get((accounts, False))
        if on and off and on["events_per_second"] and off["events_per_second"]:
            speedup[name] = round(on["events_per_second"] / off["events_per_second"], 1)
    headline = by[(False, True)]  # batching on, contacts alone: what the targets are about
    measured = {"contacts": headline, "with accounts": by[(True, True)]}
    return {
        "crm": crm.slug,
        "events": opts.events,
        "companies": opts.companies,
        "concurrency": opts.concurrency,
        "redis": rds.origin,
        "api_calls": headline["api_calls"],
        "calls_per_event": headline["calls_per_event"],
        "events_per_second": headline["events_per_second"],
        "results": results,
        "speedup_batching_on_vs_off": speedup,
        "targets_calls_per_event": crm.targets,
        "targets_met": all(
            measured[name]["calls_per_event"] <= target for name, target in crm.targets.items()
        ),
        "valid": all(r["valid"] for r in results),
    }


def print_report(crm: BatchingCrm, summary: dict[str, Any]) -> None:
    print(
        f"{crm.title} drain: {summary['events']} events ({summary['companies']} companies), "
        f"worker concurrency {summary['concurrency']}, Redis {summary['redis']}"
    )
    print(f"{'mode':28} {'events/s':>9} {'calls/event':>12} {'contacts':>9} {'accounts':>9}")
    for r in summary["results"]:
        print(
            f"{r['mode']:28} {r['events_per_second'] or '-':>9} {r['calls_per_event']:>12} "
            f"{r['contacts']:>9} {r['accounts_made']:>9}{'' if r['valid'] else '  INVALID'}"
        )
    print(f"batching on vs off (events/s): {summary['speedup_batching_on_vs_off']}")
    print(
        f"targets (calls per event, batching on): {summary['targets_calls_per_event']}: "
        f"{'met' if summary['targets_met'] else 'NOT met'}"
    )


def parse_args(crm: BatchingCrm, argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description=f"Drain a backlog into the fake {crm.title}, batching on and off: events/s "
        f"and {crm.title} API calls per event, for Contacts and for Contacts with Accounts."
    )
    parser.add_argument("--events", type=int, default=10000, help="backlog size (10000)")
    parser.add_argument("--companies", type=int, default=500, help="distinct companies (500)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=crm.batch_size,
        help=f"records per request with batching on ({crm.batch_size}, the API's most)",
    )
    parser.add_argument(
        "--stall-timeout", type=float, default=120.0, help="give up after this long idle (120 s)"
    )
    add_common_flags(parser)
    ns = parser.parse_args(argv)
    if ns.events < 1 or ns.companies < 1 or ns.batch_size < 2:
        parser.error("--events and --companies must be positive, --batch-size at least 2")
    return Options(
        events=ns.events,
        companies=ns.companies,
        batch_size=ns.batch_size,
        concurrency=int(os.environ.get("CRMHUB_WORKER_CONCURRENCY") or 2),
        stall_timeout=ns.stall_timeout,
        embedded_redis=ns.embedded_redis,
        json=ns.json,
    )


def batching_main(crm: BatchingCrm, argv: list[str] | None = None) -> int:
    opts = parse_args(crm, argv)
    return bench_main(
        f"bench/{crm.slug}.py",
        f"crmhub-bench-{crm.slug}-",
        embedded_redis=opts.embedded_redis,
        as_json=opts.json,
        setup=lambda: functools.partial(bench, crm, opts),
        summarize=functools.partial(summarize, crm, opts),
        report=lambda summary, _results: print_report(crm, summary),
    )
