"""Redis failover under load: a primary, a replica and three sentinels of the test's own
(Debian's redis-sentinel is `redis-server --sentinel`), the hub on `redis+sentinel://`
(ledger and broker), webhooks arriving while the primary is SIGKILLed.

Replication is asynchronous: the primary answers a write before its replica has it, so a
failover can lose what the receiver had already answered 202 for (the replica is promoted
without it). The test counts those, and with CRMHUB_REDIS_WAIT_REPLICAS=1 (each accept
confirmed by a replica before 202) asserts there are none. Either way, after the failover
the hub writes to the new primary again (the sentinels say which), and every event the new
primary holds is delivered.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from conftest import text
from hubtest import STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import DemoTarget, Part, wait_until

from core.embedded_redis import find_redis_server
from core.ledger.deliveries import read_fields
from core.ledger.event_fields import read_delivery_ids
from core.ledger.keys import LedgerKeys

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("serve"),
    pytest.mark.timeout(600),
]

SERVICE = "hubmaster"
EVENTS = 400
KILL_AFTER = 150

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
      n: data.object.metadata.n
"""


class RedisNode:
    """One redis-server (data or sentinel) of the test's own, on a free loopback port."""

    def __init__(self, directory: Path, args: list[str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        self.process = subprocess.Popen(
            [find_redis_server(), *self.args, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), *extra],
            stdout=(self.directory / "log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(client), timeout=15, message=f"redis on {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


class SentinelSet:
    """A primary, a replica and three sentinels watching them (quorum 2, down after 1 s)."""

    def __init__(self, root: Path) -> None:
        durable = ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                   "--maxmemory-policy", "noeviction"]  # fmt: skip
        self.primary = RedisNode(root / "primary", durable)
        self.replica = RedisNode(root / "replica", durable)
        self.primary.start()
        self.replica.start("--replicaof", "127.0.0.1", str(self.primary.port))
        self.sentinels = []
        for n in range(3):
            conf = root / f"sentinel{n}" / "sentinel.conf"
            conf.parent.mkdir(parents=True)
            conf.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            node = RedisNode(conf.parent, [str(conf), "--sentinel"])
            node.start()
            self.sentinels.append(node)
        wait_until(self._replicated, timeout=30, message="the replica in sync")
        wait_until(self._watched, timeout=30, message="the sentinels to see the replica")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        reply = (
            self.sentinels[0]
            .client()
            .execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        )
        return int(reply[1])

    def _replicated(self) -> bool:
        return self.replica.client().info("replication")["master_link_status"] == "up"

    def _watched(self) -> bool:
        return all(
            int(_pairs(s.client().execute_command("SENTINEL", "MASTER", SERVICE))["num-slaves"])
            >= 1
            for s in self.sentinels
        )

    def stop(self) -> None:
        for node in (*self.sentinels, self.primary, self.replica):
            node.kill()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    nodes = SentinelSet(tmp_path / "redis")
    yield nodes
    nodes.stop()


@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_the_hub_fails_over_with_its_redis_and_with_wait_loses_no_accepted_event(
    tmp_path: Path, sentinels: SentinelSet, wait_replicas: int
) -> None:
    target = DemoTarget()
    prefix = f"crmhub-failover-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(target=target.url))
    port = free_port()
    env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": sentinels.url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path),
        "CRMHUB_PORT": str(port),
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CRMHUB_LEASE_SECONDS": "5",
        "CRMHUB_REPUBLISH_AFTER_SECONDS": "5",
        "CRMHUB_WEB_WORKERS": "2",
    }
    if wait_replicas:
        env["CRMHUB_REDIS_WAIT_REPLICAS"] = str(wait_replicas)
    parts = {name: Part(name, env, tmp_path) for name in ("web", "worker", "beat")}
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    accepted: dict[int, str] = {}
    unavailable = 0
    lock = threading.Lock()

    def send(i: int) -> None:
        nonlocal unavailable
        ev = stripe_event(f"evt_fo_{i}", type_="customer.created", email=f"f{i}@example.com")
        ev["data"]["object"]["metadata"] = {"n": i}
        body, headers = signed("stripe", ev, STRIPE_SECRET)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = http.post("/webhooks/stripe", content=body, headers=headers)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code in (200, 202):
                with lock:
                    accepted[i] = response.json()["event_id"]
                return
            assert response.status_code == 503, response.text
            with lock:
                unavailable += 1
            time.sleep(0.1)
        raise AssertionError(f"event {i} never accepted")

    try:
        wait_until(lambda: _ready(http), timeout=60, message="receiver ready")
        old_primary = sentinels.primary.port
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(send, i) for i in range(EVENTS)]
            wait_until(lambda: len(accepted) >= KILL_AFTER, timeout=120, message="load")
            sentinels.primary.kill()  # the primary's host dies
            wait_until(
                lambda: sentinels.master_port() != old_primary,
                timeout=60,
                message="the sentinels to promote the replica",
            )
            # the old primary comes back; the sentinels make it the new primary's replica
            sentinels.primary.start()
            for future in futures:
                future.result()
        assert len(accepted) == EVENTS

        new_primary = redis.Redis(port=sentinels.master_port(), decode_responses=True)
        lost = {i for i, event_id in accepted.items()
                if not new_primary.exists(f"{prefix}:evt:{event_id}")}  # fmt: skip
        if wait_replicas:
            assert lost == set(), f"accepted events lost despite WAIT: {sorted(lost)}"

        survived = EVENTS - len(lost)

        def settled() -> bool:
            states = [s for [s] in read_fields(new_primary, LedgerKeys(prefix), _deliveries(
                new_primary, prefix, accepted, lost), ["state"])]  # fmt: skip
            return all(s in ("delivered", "dead") for s in states)

        try:
            wait_until(settled, timeout=240, interval=1, message="every surviving delivery")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n"
                + "\n".join(f"--- {n} ---\n{p.output()[-3000:]}" for n, p in parts.items())
            ) from None
        states = {text(s) for [s] in read_fields(new_primary, LedgerKeys(prefix), _deliveries(
                  new_primary, prefix, accepted, lost), ["state"])}  # fmt: skip
        assert states == {"delivered"}
        written = {r["key"] for r in target.records("contacts")}
        assert {f"f{i}@example.com" for i in accepted if i not in lost} <= written
        print(
            f"\nfailover (WAIT {wait_replicas}): {EVENTS} accepted, primary SIGKILLed after "
            f"{KILL_AFTER}; {unavailable} answers 503 during the failover; "
            f"{len(lost)} accepted events lost with the old primary "
            f"({len({f'f{i}@example.com' for i in lost} & written)} of them written before); "
            f"{survived} survived, all delivered"
        )
    finally:
        for part in parts.values():
            part.stop()
        target.stop()


def _deliveries(
    client: redis.Redis, prefix: str, accepted: dict[int, str], lost: set[int]
) -> list[str]:
    kept = [event_id for i, event_id in accepted.items() if i not in lost]
    return [d for ids in read_delivery_ids(client, LedgerKeys(prefix), kept) for d in ids]


def _pairs(reply: object) -> dict[str, str]:
    """A SENTINEL MASTER reply (a flat list of names and values, or a dict) as a dict."""
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    assert isinstance(reply, list)
    return {text(k): text(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
