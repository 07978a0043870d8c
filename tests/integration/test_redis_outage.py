"""Issue 9, item 1: after Redis comes back, every part of the hub works again within 5 s,
however long it was away and however many calls failed meanwhile.

The hub runs as the Procfile runs it (gunicorn with two processes, a Celery worker, beat)
against a redis-server of the test's own (AOF on, so a restart keeps the ledger), which is
SIGKILLed while 1,000 webhooks are sent (each answered 503 with Retry-After, /readyz 503), and
started again on the same port. From that moment:

- web: webhooks are accepted again (202) by both gunicorn processes, and /readyz says ready;
- worker: a webhook accepted after the return is delivered to the target;
- beat: the sweeper runs again: a delivery whose message was lost (planted after the return,
  so only a sweep can publish it) is republished and delivered.

The outage lasts longer than a sweep message lives (its `expires`), so no sweep published
before the outage can stand in for beat's.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hubtest import STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import DemoTarget, Part, PrivateRedis, wait_until

from core.config import load_config
from core.intake import build_events
from core.ledger import Ledger
from core.queue import HintQueue
from core.redis_client import connect

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

FAILED_WEBHOOKS = 1000
RECOVERY_SECONDS = 5.0  # the deadline, for every part
#: longer than a sweep message lives (`expires`: 5 sweep intervals of 2 s), and long enough
#: that Celery's default reconnect back-off (2, 4, 6, 8 s ... between attempts) misses the
#: deadline
OUTAGE_SECONDS = 14.0

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
connections:
  crm:
    connector: http
    base_url: {target}
mappings:
  customers:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email}}
    fields: {{email: data.object.email}}
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def target() -> Iterator[DemoTarget]:
    server = DemoTarget()
    yield server
    server.stop()


def webhook(n: int) -> tuple[bytes, dict[str, str]]:
    return signed(
        "stripe", stripe_event(f"evt_outage_{n}", email=f"person{n}@example.com"), STRIPE_SECRET
    )


def delivered(target: DemoTarget, n: int) -> bool:
    return any(r["key"] == f"person{n}@example.com" for r in target.records("contacts"))


def written_after(target: DemoTarget, n: int, since: float, what: str) -> float:
    """Seconds from `since` (wall clock) until the target stored webhook n's record."""
    wait_until(lambda: delivered(target, n), timeout=60, message=what)
    (at,) = [
        e["time"]
        for e in target.log()
        if e["key"] == f"person{n}@example.com" and e["status"] in (200, 201)
    ]
    return float(at) - since


def test_web_worker_and_beat_each_recover_within_5_s_after_an_outage_of_1000_failed_calls(
    tmp_path: Path, redis_server: PrivateRedis, target: DemoTarget
) -> None:
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(target=target.url))
    prefix = f"crmhub-outage-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": redis_server.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path),
        "CRMHUB_PORT": str(port),
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CRMHUB_WEB_WORKERS": "2",
    }
    parts = {name: Part(name, env, tmp_path) for name in ("web", "worker", "beat")}
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=30)

    def post(n: int, client: httpx.Client = http) -> httpx.Response:
        body, headers = webhook(n)
        return client.post("/webhooks/stripe", content=body, headers=headers)

    def ready() -> bool:
        try:
            return http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, message="the receiver to be ready")
        assert post(0).status_code == 202
        wait_until(lambda: delivered(target, 0), timeout=60, message="a first delivery")

        redis_server.kill()
        down_since = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(post, range(1, FAILED_WEBHOOKS + 1)))
        assert {a.status_code for a in answers} == {503}
        assert all(int(a.headers["Retry-After"]) > 0 for a in answers)
        assert http.get("/readyz").status_code == 503
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))

        redis_server.start()
        back, back_at = time.monotonic(), time.time()
        lost = plant_a_delivery_whose_message_was_lost(config, env, prefix, n=5000)

        # web: accepted again, by every gunicorn process (connections that each close after
        # one request spread over both)
        first = FAILED_WEBHOOKS + 1
        while (answer := post(first)).status_code != 202:
            assert time.monotonic() - back < 30, f"still {answer.status_code}: {answer.text}"
            first += 1
            time.sleep(0.05)
        web_after = time.monotonic() - back
        for n in range(first + 1, first + 21):
            body, headers = webhook(n)
            answer = http.post(
                "/webhooks/stripe", content=body, headers={**headers, "Connection": "close"}
            )
            assert answer.status_code == 202, f"webhook {n} after the return: {answer.text}"
        all_web_after = time.monotonic() - back
        assert ready()

        # worker: what was accepted after the return is delivered; beat: the sweeper runs
        # again and republishes the lost message (each timed by the target's own clock)
        worker_after = written_after(target, first, back_at, "the worker to deliver again")
        beat_after = written_after(target, lost, back_at, "the sweeper to run again")
        print(
            f"\nafter {FAILED_WEBHOOKS} webhooks answered 503 in a "
            f"{back - down_since:.1f} s outage, seconds until, after Redis was back: web "
            f"accepting {web_after:.2f} (both processes {all_web_after:.2f}), worker "
            f"delivering {worker_after:.2f}, sweeper republishing {beat_after:.2f}"
        )
        assert web_after <= RECOVERY_SECONDS
        assert all_web_after <= RECOVERY_SECONDS
        assert worker_after <= RECOVERY_SECONDS
        assert beat_after <= RECOVERY_SECONDS
    finally:
        for part in parts.values():
            part.stop()
        http.close()


def plant_a_delivery_whose_message_was_lost(
    config: Path, env: dict[str, str], prefix: str, n: int
) -> int:
    """Record webhook `n` as the receiver would, but long ago and with its queue message gone
    (published to a queue nobody reads): only the sweeper publishes it again."""
    hub_config = load_config(config, env)
    body, _ = webhook(n)
    long_ago = time.time() - 3600
    events = build_events(
        hub_config.sources["stripe"],
        hub_config.mappings_for("stripe"),
        {},
        {},
        body.decode(),
        json.loads(body),
        long_ago,
    )
    nowhere = HintQueue(f"{prefix}.nowhere", f"{prefix}:nowhere:")
    client = connect(env["CRMHUB_REDIS_URL"])
    try:
        (result,) = Ledger(client, prefix=prefix, queue=nowhere).accept(events, long_ago)
    finally:
        client.close()
    assert result.deliveries == 1 and not result.duplicate
    return n
