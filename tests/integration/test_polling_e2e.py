"""A polling source end to end (issue 16's proof): the Procfile's worker and beat on a real
Redis poll the fake Salesforce (a server over loopback) while a writer changes its Contacts.

- 5,000 Contacts created in waves while the hub polls, 1,000 of them edited afterwards
  (each an edit of a record the hub has already recorded, so every version is listable);
- one wave of 600 saved in one request, so far more records share one second's stamp than a
  page holds (200): page boundaries fall inside one stamp;
- the listing slowed down (300 ms a query) and the worker and beat SIGKILLed mid-listing,
  between two pages, then started again;

and every change arrives exactly once: one event per save, none missing, none twice.
"""

from __future__ import annotations

import collections
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from processes import FakeSalesforce, Part, wait_until

from core.ledger.views import decode

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

SF_ID, SF_SECRET, SF_REFRESH = "sf-client", "sf-client-secret", "sf-refresh-1"
SOURCE = "sf-contacts"
CONFIG = """
sources:
  sf-contacts:
    poll: {{connection: salesforce, object: Contact, every: 1s, cursor: SystemModstamp,
           fields: [Id, Email, LastName, Title], page_size: 200}}
connections:
  salesforce:
    connector: salesforce
    login_url: {salesforce}
    auth: {{type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
            refresh_token_env: SF_REFRESH_TOKEN}}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Polled:
    def __init__(self, env: dict[str, str], cwd: Path, salesforce: FakeSalesforce) -> None:
        self.env, self.cwd, self.salesforce = env, cwd, salesforce
        self.redis = redis.Redis.from_url(env["CRMHUB_REDIS_URL"])
        self.prefix = env["CRMHUB_KEY_PREFIX"]
        self.parts: dict[str, Part] = {}

    def start(self) -> None:
        self.parts = {name: Part(name, self.env, self.cwd) for name in ("worker", "beat")}

    def kill(self) -> None:
        for part in self.parts.values():
            part.kill()

    def stop(self) -> None:
        for part in self.parts.values():
            part.stop()

    def save(self, changes: list[dict[str, Any]]) -> list[str]:
        response = self.salesforce.http.post("/_control/records", json=changes)
        response.raise_for_status()
        return list(response.json()["ids"])

    def cursor(self) -> dict[str, str]:
        raw = self.redis.hgetall(f"{self.prefix}:poll:{SOURCE}")
        return {_text(k): _text(v) for k, v in raw.items()}

    def bodies(self) -> list[dict[str, Any]]:
        ids = self.redis.zrange(f"{self.prefix}:events:src:{SOURCE}", 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.hgetall(f"{self.prefix}:evt:{_text(event_id)}")
        # the body as received, however it is held (core/ledger/bodies.py)
        return [json.loads(decode(raw)["body"]) for raw in pipe.execute()]

    def recorded(self) -> int:
        return int(self.redis.zcard(f"{self.prefix}:events:src:{SOURCE}"))

    def output(self) -> str:
        return "\n".join(f"--- {n}\n{p.output()[-3000:]}" for n, p in self.parts.items())


@pytest.fixture
def polled(tmp_path: Path, real_redis_url: str) -> Iterator[Polled]:
    salesforce = FakeSalesforce(
        "--client-id", SF_ID, "--client-secret", SF_SECRET, "--refresh-token", SF_REFRESH
    )
    prefix = f"crmhub-polling-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(salesforce=salesforce.url))
    env = {
        "PATH": os.environ["PATH"],
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "SF_CLIENT_ID": SF_ID,
        "SF_CLIENT_SECRET": SF_SECRET,
        "SF_REFRESH_TOKEN": SF_REFRESH,
    }
    run = Polled(env, tmp_path, salesforce)
    run.start()
    try:
        yield run
    finally:
        run.stop()
        salesforce.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


def test_five_thousand_records_changing_while_polled_arrive_exactly_once(polled: Polled) -> None:
    wait_until(lambda: "ms" in polled.cursor(), timeout=60, message="the source's first poll")
    time.sleep(1.1)  # past the start's margin: everything below is a change after the start
    made: list[str] = []
    expected = 0

    def wave(count: int, per_request: int) -> None:
        nonlocal expected
        for start in range(0, count, per_request):
            n = len(made)
            batch = [
                {"object": "Contact", "LastName": f"L{n + i}", "Email": f"p{n + i}@example.com"}
                for i in range(min(per_request, count - start))
            ]
            made.extend(polled.save(batch))
            expected += len(batch)

    def caught_up(message: str) -> None:
        wait_until(
            lambda: polled.recorded() >= expected,
            timeout=120,
            message=f"{message}: {polled.recorded()} of {expected} recorded\n{polled.output()}",
        )

    # waves while the hub polls every second
    for _ in range(4):
        wave(500, 50)
        time.sleep(0.3)
    wave(600, 600)  # one request: hundreds of records share one second's stamp
    caught_up("the first waves")

    # slow listings, then kill the worker and beat between two pages of one listing
    polled.salesforce.fault(mode="latency", latency_ms=300, methods=["GET"])
    before = int(polled.cursor().get("listed") or 0)
    wave(1400, 200)
    wait_until(
        lambda: int(polled.cursor().get("listed") or 0) >= before + 200,
        timeout=60,
        message=f"a page of the slowed listing\n{polled.output()}",
    )
    assert polled.recorded() < expected, "the listing should still be under way"
    polled.kill()
    mid = polled.recorded()
    wave(1000, 100)  # changes while the hub is down
    polled.salesforce.clear_faults()
    polled.start()
    caught_up("after the restart")

    # edits of records already recorded: each a new version with a distinct value
    for start in range(0, 1000, 100):
        edits = [
            {"object": "Contact", "Id": made[i], "Title": f"T{i}"}
            for i in range(start, start + 100)
        ]
        polled.save(edits)
        expected += len(edits)
    caught_up("the edits")
    time.sleep(3)  # a few more polls: nothing more may arrive

    bodies = polled.bodies()
    versions = collections.Counter((b["Id"], b.get("Title")) for b in bodies)
    assert len(made) == 5000 and len(bodies) == expected == 6000
    assert max(versions.values()) == 1, "a change recorded twice"
    assert set(versions) == {(i, None) for i in made} | {(made[i], f"T{i}") for i in range(1000)}
    assert 0 < mid < 6000
    stamps = collections.Counter(r["SystemModstamp"] for r in polled.salesforce.records("Contact"))
    created = collections.Counter(b["SystemModstamp"] for b in bodies if b.get("Title") is None)
    assert max(created.values()) > 200, "no stamp held more records than a page"
    assert sum(stamps.values()) == 5000
    assert polled.salesforce.violations() == []
