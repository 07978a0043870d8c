"""The move from Redis to the archive survives its archiver being SIGKILLed mid-move, again and
again: afterwards every event is in exactly one place and nothing is lost (core/archive/mover.py
has the argument: the archive commits before Redis lets go, and Redis lets go only of what is
unchanged). Real Redis, the archiver as its own process (`crmhub archive run`, the function the
scheduler's task runs), both archives (SQLite, PostgreSQL); plus /metrics' storage figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import make_settings, text
from processes import CRMHUB, wait_until
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from core.archive import Archive, open_archive
from core.ledger import Ledger, NewDelivery, NewEvent, open_ledger
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve"), pytest.mark.timeout(600)]

DONE = 4000  # delivered events, due for the archive
KEPT = 50  # pending and dead ones, which must stay in Redis
KILLS = 8
BATCH = 20


def fill(ledger: Ledger, done: int, kept: int, now: float) -> tuple[list[str], list[str]]:
    """`done` events delivered and `kept` not done (half pending, half dead); their ids."""
    events = [
        NewEvent(
            id=f"evt_{n:05d}",
            source="stripe",
            type="customer.updated",
            external_id=f"ext_{n}",
            received_at=now,
            occurred_at=None,
            headers={},
            body=json.dumps({"n": n, "email": f"c{n}@example.com", "pad": "x" * 300}),
            deliveries=(NewDelivery(f"dlv_{n:05d}", "m", "crm", "contacts", f"crm:{n}"),),
        )
        for n in range(done + kept)
    ]
    for start in range(0, len(events), 200):
        ledger.accept(events[start : start + 200], now)
    for n in range(done + kept):
        if n >= done and n % 2:
            continue  # pending
        assert ledger.claim(f"dlv_{n:05d}", token="t", now=now, lease_seconds=60).status == (
            "claimed"
        )
        dead = n >= done
        ledger.finish(
            f"dlv_{n:05d}",
            token="t",
            now=now,
            outcome=AttemptOutcome.DEAD if dead else AttemptOutcome.DELIVERED,
            attempt={"at": now, "n": n},
            category=DeadCategory.REJECTED_BY_TARGET if dead else None,
        )
    ids = [e.id for e in events]
    return ids[:done], ids[done:]


def where(ledger: Ledger, archive: Archive, ids: list[str]) -> dict[str, set[str]]:
    """Which of the ids are in Redis, and which in the archive."""
    hot = {
        i for i, raw in zip(ids, ledger.event_fields(ids, ("id",)), strict=True) if raw.get("id")
    }
    with archive.db.transaction(write=False) as tx:
        cold = {r[0] for r in tx.execute("SELECT id FROM archived_events")}
    return {"hot": hot, "archived": cold}


@pytest.fixture
def settings(
    tmp_path: Path, archive_database_url: str, real_redis_url: str, key_prefix: str
) -> Settings:
    config = tmp_path / "crmhub.yaml"
    config.write_text("sources: {}\nconnections: {}\nmappings: {}\n")
    return make_settings(
        config,
        key_prefix,
        real_redis_url,
        CRMHUB_ARCHIVE_URL=archive_database_url,
        CRMHUB_VAR_DIR=str(tmp_path / "var"),
        CRMHUB_HOT_RETENTION_SECONDS="1",
        CRMHUB_ARCHIVE_BATCH_SIZE=str(BATCH),
    )


@pytest.fixture
def stores(settings: Settings, real_redis: redis.Redis) -> Iterator[tuple[Ledger, Archive]]:
    ledger = open_ledger(settings, real_redis)
    archive = open_archive(settings)
    yield ledger, archive
    archive.close()


def test_sigkilled_archivers_leave_every_event_in_exactly_one_place(
    settings: Settings, stores: tuple[Ledger, Archive], real_redis: redis.Redis
) -> None:
    ledger, archive = stores
    done, kept = fill(ledger, DONE, KEPT, time.time() - 60)
    env = {**os.environ, **settings.environ}
    lock = ledger.keys.archive_lock()
    rng = random.Random(14)
    interrupted = 0  # kills that left the move unfinished
    for _ in range(KILLS):
        wait_until(lambda: not real_redis.exists(lock), timeout=15, message="the lock to expire")
        proc = subprocess.Popen(
            [CRMHUB, "archive", "run", "--until-caught-up"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # kill it somewhere in its moves: once it holds the lock, after a random while
        wait_until(
            lambda proc=proc: real_redis.exists(lock) or proc.poll() is not None,  # type: ignore[misc]
            timeout=30,
            interval=0.005,
            message="the archiver to start moving",
        )
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        found = where(ledger, archive, done + kept)
        # at every kill: nothing in neither place; what is not done yet never left Redis
        assert set(done + kept) <= found["hot"] | found["archived"]
        assert set(kept) <= found["hot"] and not set(kept) & found["archived"]
        if found["hot"] & set(done):
            interrupted += 1
    assert interrupted >= KILLS // 2, "the kills should land while moves were under way"

    wait_until(lambda: not real_redis.exists(lock), timeout=15, message="the lock to expire")
    finished = subprocess.run(
        [CRMHUB, "archive", "run", "--until-caught-up", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    found = where(ledger, archive, done + kept)
    assert found["archived"] == set(done)  # each done event archived, once (a primary key)
    assert found["hot"] == set(kept)  # and gone from Redis; the rest stayed
    assert archive.count() == DONE  # the row counter survived the crashes too
    assert ledger.done_count() == 0
    assert not real_redis.keys(f"{settings.key_prefix}:dlv:dlv_00000*")
    for event_id in rng.sample(done, 20):
        shown = archive.event(event_id)
        assert shown is not None
        [delivery] = shown["deliveries"]
        assert delivery["state"] == "delivered" and len(delivery["attempt_history"]) == 1


def test_metrics_report_redis_memory_archive_lag_and_rows(
    settings: Settings, stores: tuple[Ledger, Archive], real_redis: redis.Redis
) -> None:
    ledger, archive = stores
    fill(ledger, 3, 0, time.time() - 30)  # done 30 s ago, retention 1 s: 29 s behind
    client = create_app(settings, redis_client=real_redis).test_client()

    def samples() -> dict[str, float]:
        response = client.get("/metrics")
        assert response.status_code == 200
        return {
            s.name: s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples
        }

    before = samples()
    assert before["crmhub_redis_memory_used_bytes"] > 0
    assert before["crmhub_redis_memory_limit_bytes"] == int(
        text(real_redis.config_get("maxmemory")["maxmemory"])
    )
    assert before["crmhub_hot_done_events"] == 3
    assert 28 <= before["crmhub_archive_lag_seconds"] <= 60
    assert before["crmhub_archive_oldest_done_age_seconds"] >= 29
    assert (before["crmhub_archive_up"], before["crmhub_archive_events"]) == (1, 0)

    from core.archive.mover import archive_pass

    assert archive_pass(ledger, archive, settings).moved == 3
    after = samples()
    assert after["crmhub_archive_lag_seconds"] == 0
    assert after["crmhub_hot_done_events"] == 0
    assert after["crmhub_archive_events"] == 3
