"""Many hosts on one Redis: two "hosts", each a receiver and a Celery worker of its own
(separate process trees, their own Celery node names), the scheduler beside the first.

Under load through both receivers:
- the connection's rate limit holds in total: with `rate_limit: {requests: 20, per_seconds:
  1}` the target (which records when each request reached it) never sees more than 20
  requests in any rolling second, whichever host's worker sent them;
- a paused connection holds on every host: while paused, events accepted by both receivers
  are held, and the target receives nothing;
- killing one whole host (its receiver and its worker, SIGKILL of each process group) mid-run
  loses nothing: every accepted event is delivered (each record written, and more than once
  only through a retry of the same delivery after its worker died).

Parametrized over the broker: Redis, and RabbitMQ (a vhost of the test's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from hubtest import STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import CRMHUB, DemoTarget, Part, PrivateRedis, wait_until
from rabbitmq import rabbitmq_url  # noqa: F401 (a fixture)

from core.ledger.deliveries import read_hashes
from core.ledger.event_fields import read_delivery_ids
from core.ledger.keys import LedgerKeys

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("serve"),
    pytest.mark.timeout(600),
]

REQUESTS, PER_SECONDS = 20, 1.0
BEFORE_PAUSE, WHILE_PAUSED, AFTER_RESUME = 120, 40, 160

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
    timeout_seconds: 5
    rate_limit: {{requests: {requests}, per_seconds: {per_seconds}}}
    retry: {{base_seconds: 0.2, max_seconds: 2, give_up_after_seconds: 3600}}
mappings:
  customers:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email], required: true}}
      name: data.object.name
      n: data.object.metadata.n
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis", appendonly=True)
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()


class Host:
    """One machine's share of the hub: a receiver and a worker (and, on one, the beat),
    each its own process group, in a directory of its own."""

    def __init__(self, name: str, env: dict[str, str], root: Path, *, beat: bool) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.port = free_port()
        self.env = {
            **env,
            "CRMHUB_VAR_DIR": str(self.dir),
            "CRMHUB_PORT": str(self.port),
            "CRMHUB_WORKER_NAME": f"{name}@%h",
        }
        names = ("web", "worker", "beat") if beat else ("web", "worker")
        self.parts = {part: Part(part, self.env, self.dir) for part in names}
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.alive = True

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def named(self) -> bool:
        """The worker's banner names its node after the host (CRMHUB_WORKER_NAME)."""
        return f"{self.name}@" in self.parts["worker"].output()

    def kill(self) -> None:
        """The host loses power: every process of it SIGKILLed at once."""
        self.alive = False
        for part in self.parts.values():
            part.kill()

    def stop(self) -> None:
        for part in self.parts.values():
            part.stop()

    def output(self) -> str:
        return "\n".join(
            f"--- {self.name} {n} ---\n{p.output()[-2000:]}" for n, p in self.parts.items()
        )


def crmhub(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [CRMHUB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def counts(env: dict[str, str], cwd: Path) -> dict[str, int]:
    (crm,) = json.loads(crmhub(env, cwd, "status", "--json"))["connections"]
    return dict(crm["counts"])


def busiest_window(times: list[float], window: float) -> int:
    """The most requests in any rolling `window` seconds (each window starting at one)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_busiest_window_counter_sees_a_burst_at_an_edge() -> None:
    edge = [0.99 + i * 0.0001 for i in range(20)] + [1.0 + i * 0.0001 for i in range(20)]
    assert busiest_window(edge, 1.0) == 40
    assert busiest_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_two_hosts_share_the_rate_limit_and_the_pause_and_survive_losing_one(
    tmp_path: Path, redis_server: PrivateRedis, broker: str, request: pytest.FixtureRequest
) -> None:
    target = DemoTarget()
    prefix = f"crmhub-hosts-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(target=target.url, requests=REQUESTS, per_seconds=PER_SECONDS))
    env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": redis_server.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CRMHUB_LEASE_SECONDS": "5",
        "CRMHUB_REPUBLISH_AFTER_SECONDS": "10",
        "CRMHUB_WEB_WORKERS": "1",
        "CRMHUB_WORKER_CONCURRENCY": "2",
    }
    if broker == "rabbitmq":
        env["CRMHUB_BROKER_URL"] = request.getfixturevalue("rabbitmq_url")
    hosts = [Host("host-a", env, tmp_path, beat=True), Host("host-b", env, tmp_path, beat=False)]
    cli_env = {**env, "CRMHUB_VAR_DIR": str(tmp_path)}
    accepted: dict[int, str] = {}
    lock = threading.Lock()

    def send(i: int) -> None:
        """Through host a or b, as a load balancer would; a dead host's share goes to the
        other (a refused connection, or a request cut off by the kill, is tried again)."""
        ev = stripe_event(f"evt_hosts_{i}", type_="customer.created", email=f"c{i}@example.com")
        ev["data"]["object"]["metadata"] = {"n": i}
        body, headers = signed("stripe", ev, STRIPE_SECRET)
        for attempt in range(200):
            host = hosts[(i + attempt) % 2]
            if not host.alive:
                continue
            try:
                response = host.http.post("/webhooks/stripe", content=body, headers=headers)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code in (200, 202):
                with lock:
                    accepted[i] = response.json()["event_id"]
                return
            assert response.status_code == 503, response.text
            time.sleep(0.1)
        raise AssertionError(f"event {i} was never accepted")

    def puts() -> list[dict]:
        return [e for e in target.log() if e["method"] == "PUT"]

    try:
        for host in hosts:
            wait_until(host.ready, timeout=60, message=f"{host.name}'s receiver ready")
            # each worker runs under its own node name (CRMHUB_WORKER_NAME, the Procfile's)
            wait_until(host.named, timeout=60, message=f"{host.name}'s worker node")
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(send, range(BEFORE_PAUSE)))
            wait_until(lambda: len(puts()) >= 40, timeout=120, message="40 writes")

            # paused: whatever either host's worker takes is held; the target gets nothing
            crmhub(cli_env, tmp_path, "pause", "crm")
            list(pool.map(send, range(BEFORE_PAUSE, BEFORE_PAUSE + WHILE_PAUSED)))

            def all_held_or_done() -> bool:
                c = counts(cli_env, tmp_path)
                return c.get("pending", 0) + c.get("in_flight", 0) + c.get("scheduled", 0) == 0

            wait_until(all_held_or_done, timeout=120, interval=0.5, message="every delivery held")
            held = counts(cli_env, tmp_path)["held"]
            log = puts()
            writes_at_pause = len(log)
            assert held >= WHILE_PAUSED  # at least everything accepted while paused
            paused_keys = {
                f"c{i}@example.com" for i in range(BEFORE_PAUSE, BEFORE_PAUSE + WHILE_PAUSED)
            }
            assert not paused_keys & {e["key"] for e in log}  # none written while paused
            crmhub(cli_env, tmp_path, "resume", "crm")

            # resumed, and more load: one host dies mid-run
            start = BEFORE_PAUSE + WHILE_PAUSED
            later = pool.map(send, range(start, start + AFTER_RESUME))
            wait_until(lambda: len(puts()) >= writes_at_pause + 60, timeout=120, message="writes")
            hosts[1].kill()
            list(later)
        total = BEFORE_PAUSE + WHILE_PAUSED + AFTER_RESUME
        assert len(accepted) == total

        state: dict[str, int] = {}

        def settled() -> bool:
            state.update(counts(cli_env, tmp_path))
            return state.get("delivered", 0) + state.get("dead", 0) == total

        try:
            wait_until(settled, timeout=300, interval=1, message="every delivery to settle")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; {state}\n" + "\n".join(h.output() for h in hosts)
            ) from None

        ledger = redis.Redis.from_url(redis_server.url, decode_responses=True)
        deliveries = {}
        listed = read_delivery_ids(ledger, LedgerKeys(prefix), list(accepted.values()))
        for i, (delivery_id,) in zip(accepted, listed, strict=True):
            # its own hash, or its event's (where a first is held): core/ledger/deliveries.py
            [deliveries[i]] = read_hashes(ledger, LedgerKeys(prefix), [delivery_id])
        assert Counter(d["state"] for d in deliveries.values()) == {"delivered": total}

        log = puts()
        ok = [e for e in log if e["status"] in (200, 201)]
        written = Counter(e["key"] for e in ok)
        for i, d in deliveries.items():
            key = f"c{i}@example.com"
            # each record written; more than once only by a retry of its own delivery
            assert 1 <= written[key] <= int(d["attempts"]), (i, written[key], d)
        records = {r["key"]: r["fields"]["n"] for r in target.records("contacts")}
        assert records == {f"c{i}@example.com": i for i in range(total)}

        busiest = busiest_window([e["time"] for e in log], PER_SECONDS)
        assert busiest <= REQUESTS, f"{busiest} requests reached the target in one second"
        first, last = min(e["time"] for e in log), max(e["time"] for e in log)
        print(
            f"\nmany hosts ({broker}): {total} events through 2 receivers and 2 workers; "
            f"{len(log)} PUTs over {last - first:.1f} s, busiest rolling second {busiest} "
            f"(limit {REQUESTS}); {held} held while paused (none written); "
            f"host-b killed mid-run; "
            f"{sum(written.values()) - total} duplicate writes (retries after the kill)"
        )
    finally:
        for host in hosts:
            host.stop()
        target.stop()
