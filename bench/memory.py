"""Redis memory per event: what the hub holds for an event waiting to be delivered, and what
is left of it once it was delivered and archived.

What is measured
    A redis-server of its own (core.embedded_redis: the flags `crmhub serve` runs it with; the
    embedded binary, Redis 6.2, or `--redis-server PATH`, e.g. a system Redis 7), so nobody
    else's keys move the figures. N events are accepted through the ledger (Ledger.accept, as
    the receiver does), each a 1 KB Stripe `customer.updated` body of realistic JSON (ids,
    names, addresses, notes varying per event, compact as it compresses worst: the event's body
    is held compressed, so padding would flatter the figure) with the headers the receiver
    stores, one delivery each to its own record (so each has its Celery message queued).
    Then: `held` = (used_memory after - before) / N, against the target of 2,048 bytes; where
    it goes (MEMORY USAGE of a sample of each key kind; the shared sorted sets and the queue per
    member); a dedupe key's cost (MEMORY USAGE, and used_memory freed per key when they are
    deleted), against 150 bytes. Then every delivery is delivered, the archiver runs (SQLite in
    a temporary directory) and `left` = what each event still costs Redis (its dedupe key until
    the window ends; per record, its newest_wins timestamp).

Run it from the repository root:
`.venv/bin/python bench/memory.py [--events N] [--redis-server PATH] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from core.archive import open_archive
from core.archive.mover import archive_pass
from core.embedded_redis import EmbeddedRedis
from core.ids import new_event_id
from core.ledger import Ledger, NewDelivery, NewEvent, open_ledger
from core.ledger.deliveries import folded_id
from core.ledger.keys import LedgerKeys, dedupe_digest, record_digest
from core.settings import Settings
from core.vocabulary import AttemptOutcome

TARGET_HELD = 2048
TARGET_DEDUPE = 150
SAMPLE = 200


#: free text a CRM customer record carries (notes, descriptions), mixed per event
NOTES = (
    "Enterprise customer since the 2023 pilot; billing contact changed in Q3.",
    "Asked for invoices in GBP and a purchase order number on each one.",
    "Renewal call booked with procurement; wants the annual discount applied.",
    "Moved offices: shipping now goes to the warehouse, invoices to head office.",
    "Prefers email to phone; do not call before 10:00 local time.",
    "Upgraded from the starter plan after the trial; two seats added in May.",
    "VAT number verified by finance; reverse charge applies to EU invoices.",
    "Escalated a duplicate charge in March, refunded the same day.",
)
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
CITIES = (("London", "GB", "N1 9GU"), ("Berlin", "DE", "10115"), ("Austin", "US", "78701"))


def stripe_body(i: int) -> str:
    """A Stripe customer.updated event of 1 KB, shaped as Stripe sends it (compact JSON:
    Stripe's own pretty-printed bodies compress better), its values varying per event as a
    real stream's do (ids, names, address, notes), so its compressed size is honest."""
    rng = random.Random(i)
    city, country, postal = CITIES[i % len(CITIES)]
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    token = "".join(rng.choices(string.ascii_letters + string.digits, k=14))
    event: dict[str, Any] = {
        "id": f"evt_1Q{i:022d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1732800000 + i,
        "data": {
            "object": {
                "id": f"cus_{token}",
                "object": "customer",
                "address": {
                    "city": city,
                    "country": country,
                    "line1": f"{rng.randint(1, 400)} {rng.choice(LAST)} Street",
                    "line2": None,
                    "postal_code": postal,
                    "state": None,
                },
                "balance": rng.choice((0, 0, -500, 1200)),
                "created": 1700000000 + rng.randint(0, 30_000_000),
                "currency": "gbp" if country == "GB" else "eur" if country == "DE" else "usd",
                "delinquent": False,
                "description": "",
                "email": f"customer{i}@example.com",
                "invoice_prefix": token[:8].upper(),
                "invoice_settings": {
                    "default_payment_method": f"pm_1Q{token}{rng.randint(100, 999)}",
                    "footer": None,
                },
                "livemode": False,
                "metadata": {"crm_id": f"003{token[:12]}", "plan": rng.choice(("pro", "team"))},
                "name": name,
                "phone": f"+1555{rng.randint(1000000, 9999999)}",
                "preferred_locales": ["en-GB"],
                "tax_exempt": "none",
            },
            "previous_attributes": {"email": f"{name.split()[0].lower()}@old.example"},
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{token[::-1]}", "idempotency_key": str(uuid.UUID(int=i))},
        "type": "customer.updated",
    }
    room = 1024 - len(json.dumps(event, separators=(",", ":")))
    notes = " ".join(rng.sample(NOTES, len(NOTES)))
    event["data"]["object"]["description"] = notes[:room]
    body = json.dumps(event, separators=(",", ":"))
    assert len(body) == 1024, len(body)
    return body


HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "Content-Length": "1024",
}


def new_event(i: int, now: float) -> NewEvent:
    event_id = new_event_id(now)
    delivery = NewDelivery(
        id=folded_id(event_id),  # as the receiver makes an event's first (core/intake.py)
        mapping="stripe-customer-to-hubspot-contact",
        connection="hubspot",
        object="contacts",
        record_key=f"hubspot:contacts:email=customer{i}@example.com",
        occurred_ms=(1732800000 + i) * 1000,
    )
    return NewEvent(
        id=event_id,
        source="stripe",
        type="customer.updated",
        external_id=f"evt_1Q{i:022d}",
        received_at=now,
        occurred_at=str(1732800000 + i),
        headers=HEADERS,
        body=stripe_body(i),
        deliveries=(delivery,),
    )


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def per_key(client: redis.Redis, keys: list[str]) -> float:
    return statistics.mean(int(client.memory_usage(k, samples=0) or 0) for k in keys)


def measure(n: int, tmp: Path, binary: str | None = None) -> dict[str, Any]:
    server = EmbeddedRedis(tmp / "redis", binary)
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        settings = Settings.from_env(
            {
                "CRMHUB_REDIS_URL": url,
                "CRMHUB_VAR_DIR": str(tmp / "var"),
                "CRMHUB_HOT_RETENTION_SECONDS": "1",
            }
        )
        ledger: Ledger = open_ledger(settings, client)
        now = time.time()
        events = [new_event(i, now) for i in range(n)]
        before = used(client)
        for start in range(0, n, 200):
            ledger.accept(events[start : start + 200], now)
        held = (used(client) - before) / n
        sample = events[:: max(1, n // SAMPLE)][:SAMPLE]
        keys = ledger.keys
        breakdown = {
            "event hash (body, headers and its delivery in it)": per_key(
                client, [keys.event(e.id) for e in sample]
            ),
            "record queue (one per record)": per_key(
                client,
                [keys.record_queue(record_digest(e.deliveries[0].record_key)) for e in sample],
            ),
            "dedupe key": per_key(
                client, [keys.dedupe(dedupe_digest(e.source, e.external_id)) for e in sample]
            ),
        }
        for label, key in (
            ("events index, per event", keys.events()),
            ("source's events index, per event", keys.source_events("stripe")),
            ("ready set (batches, the sweep), per delivery", keys.ready("hubspot", "contacts")),
            ("search index (sender's id, emails), per event", keys.search()),
            ("queued Celery message, per delivery", ledger.queue.key),
        ):
            breakdown[label] = int(client.memory_usage(key, samples=0) or 0) / n
        breakdown["the rest (key tables, expiry table, allocator)"] = held - sum(breakdown.values())

        # deliver them all, archive them, see what is left
        client.delete(ledger.queue.key)  # the worker would have taken the messages
        for e in events:
            d = e.deliveries[0].id
            ledger.claim(d, token="t", now=now, lease_seconds=60)
            ledger.finish(d, token="t", now=now, outcome=AttemptOutcome.DELIVERED, attempt={})
        archive = open_archive(settings)
        moved = 0
        while True:
            result = archive_pass(ledger, archive, settings, clock=lambda: now + 5)
            moved += result.moved
            if result.caught_up:
                break
        left = (used(client) - before) / n
        kinds: dict[str, int] = {}
        for key in client.scan_iter(count=1000):
            kind = key.decode().split(":")[1]
            kinds[kind] = kinds.get(kind, 0) + 1
        dedupe_before = used(client)
        client.delete(*[keys.dedupe(dedupe_digest(e.source, e.external_id)) for e in events])
        dedupe_freed = (dedupe_before - used(client)) / n
        archive.close()
        return {
            "events": n,
            "redis_version": client.info("server")["redis_version"],
            "held_bytes_per_event": round(held),
            "target_held_bytes": TARGET_HELD,
            "breakdown": {k: round(v) for k, v in breakdown.items()},
            "dedupe_key_bytes": round(breakdown["dedupe key"]),
            "dedupe_freed_per_key": round(dedupe_freed),
            "target_dedupe_bytes": TARGET_DEDUPE,
            "archived": moved,
            "left_bytes_per_event_after_archive": round(left),
            "left_without_dedupe_keys": round(left - dedupe_freed),
            "keys_left_by_kind": kinds,
        }
    finally:
        server.stop()


def measure_dedupe_keys(n: int, tmp: Path, binary: str | None = None) -> dict[str, Any]:
    """N dedupe keys alone in a Redis of their own, as accept.lua writes them (named by the
    digest of source and sender's id, valued by the first event id's 12 bytes, expiring after
    the dedupe window): used_memory per key as they are added and as they are deleted, the key
    tables' slots included (at 1,000,000 keys they are 2^20 slots, per table)."""
    server = EmbeddedRedis(tmp / "redis-dedupe", binary)
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        keys = LedgerKeys("crmhub")
        ttl = Settings.from_env({}).dedupe_ttl_seconds
        now = time.time()
        names = [keys.dedupe(dedupe_digest("stripe", f"evt_1Q{i:022d}")) for i in range(n)]
        before = used(client)
        for start in range(0, n, 10_000):
            pipe = client.pipeline(transaction=False)
            for name in names[start : start + 10_000]:
                pipe.set(name, bytes.fromhex(new_event_id(now)[4:]), ex=ttl)
            pipe.execute()
        added = (used(client) - before) / n
        full = used(client)
        for start in range(0, n, 10_000):
            client.delete(*names[start : start + 10_000])
        return {
            "dedupe_keys": n,
            "redis_version": client.info("server")["redis_version"],
            "added_per_key": round(added),
            "freed_per_key": round((full - used(client)) / n),
            "target_dedupe_bytes": TARGET_DEDUPE,
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--redis-server",
        help="the redis-server binary to measure (default: the embedded one, as `crmhub serve` "
        "runs it; e.g. /usr/bin/redis-server for a system Redis 7), started with the same flags",
    )
    parser.add_argument(
        "--dedupe-keys",
        type=int,
        default=0,
        help="instead: this many dedupe keys alone (e.g. 1000000: a busy window), their cost "
        "per key at that scale, the key tables included",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.dedupe_keys:
        with tempfile.TemporaryDirectory(prefix="crmhub-memory-") as tmp:
            at_scale = measure_dedupe_keys(args.dedupe_keys, Path(tmp), args.redis_server)
        if args.json:
            print(json.dumps(at_scale, indent=2))
        else:
            print(
                f"Redis {at_scale['redis_version']}, {at_scale['dedupe_keys']} dedupe keys: "
                f"{at_scale['added_per_key']} bytes per key added, {at_scale['freed_per_key']} "
                f"freed per key deleted, key tables included (target {TARGET_DEDUPE})"
            )
        return 0
    with tempfile.TemporaryDirectory(prefix="crmhub-memory-") as tmp:
        figures = measure(args.events, Path(tmp), args.redis_server)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"Redis {figures['redis_version']}, {figures['events']} events of 1 KB, one delivery each"
    )
    print(
        f"held, per event (message queued): {figures['held_bytes_per_event']} bytes "
        f"(target {TARGET_HELD})"
    )
    for label, value in figures["breakdown"].items():
        print(f"  {value:>6}  {label}")
    print(
        f"dedupe key: {figures['dedupe_key_bytes']} bytes (MEMORY USAGE), "
        f"{figures['dedupe_freed_per_key']} freed per key deleted (target {TARGET_DEDUPE})"
    )
    print(
        f"after delivery and archiving ({figures['archived']} moved): "
        f"{figures['left_bytes_per_event_after_archive']} bytes per event left in Redis, "
        f"{figures['left_without_dedupe_keys']} without the dedupe keys; keys left: "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures["keys_left_by_kind"].items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
