"""`crmhub backfill` end to end (issue 16's proof): 5,000 Contacts in the fake Salesforce (a
server over loopback) recorded by the CLI on a real Redis (bench/backfill.py runs 20,000 with
live webhooks beside it); the backfill SIGKILLed between two
pages of a slowed listing, then run again: it resumes where it stood, and the exact counts
hold (20,000 events, each once); its progress bar is on stderr, its summary on stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from processes import CRMHUB, FakeSalesforce, wait_until

pytestmark = [pytest.mark.integration]

SF_ID, SF_SECRET, SF_REFRESH = "sf-client", "sf-client-secret", "sf-refresh-1"
RECORDS = 5_000
PAGE = 500
CONFIG = """
sources:
  sf-contacts:
    poll: {{connection: salesforce, object: Contact, every: 1h, cursor: SystemModstamp,
           fields: [Id, Email, LastName], page_size: {page}}}
connections:
  salesforce:
    connector: salesforce
    login_url: {salesforce}
    auth: {{type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
            refresh_token_env: SF_REFRESH_TOKEN}}
"""


class Setup:
    def __init__(self, env: dict[str, str], cwd: Path, salesforce: FakeSalesforce) -> None:
        self.env, self.cwd, self.salesforce = env, cwd, salesforce
        self.redis = redis.Redis.from_url(env["CRMHUB_REDIS_URL"])
        self.prefix = env["CRMHUB_KEY_PREFIX"]

    def backfill(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CRMHUB, "backfill", "sf-contacts", "--json", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def progress(self) -> dict[str, str]:
        raw = self.redis.hgetall(f"{self.prefix}:backfill:sf-contacts")
        return {_text(k): _text(v) for k, v in raw.items()}

    def events(self) -> int:
        return int(self.redis.zcard(f"{self.prefix}:events:src:sf-contacts"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
def setup(tmp_path: Path, real_redis_url: str) -> Iterator[Setup]:
    salesforce = FakeSalesforce(
        "--client-id", SF_ID, "--client-secret", SF_SECRET, "--refresh-token", SF_REFRESH
    )
    prefix = f"crmhub-backfill-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(salesforce=salesforce.url, page=PAGE))
    env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "SF_CLIENT_ID": SF_ID,
        "SF_CLIENT_SECRET": SF_SECRET,
        "SF_REFRESH_TOKEN": SF_REFRESH,
    }
    try:
        yield Setup(env, tmp_path, salesforce)
    finally:
        salesforce.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


def test_five_thousand_records_backfilled_resumed_after_a_kill_with_exact_counts(
    setup: Setup,
) -> None:
    for start in range(0, RECORDS, 1000):
        batch = [
            {"object": "Contact", "LastName": f"L{i}", "Email": f"p{i}@example.com"}
            for i in range(start, start + 1000)
        ]
        setup.salesforce.http.post("/_control/records", json=batch).raise_for_status()

    dry = setup.backfill("--dry-run")
    out, _ = dry.communicate(timeout=120)
    assert dry.returncode == 0 and json.loads(out)["records"] == RECORDS
    assert setup.events() == 0

    # slow the listing so the kill lands between two pages
    setup.salesforce.fault(mode="latency", latency_ms=400, methods=["GET"])
    first = setup.backfill()
    wait_until(
        lambda: int(setup.progress().get("pages") or 0) >= 2,
        timeout=60,
        message="two pages of the first backfill",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    stood = setup.events()
    assert 0 < stood < RECORDS, stood
    setup.salesforce.clear_faults()

    second = setup.backfill()
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert set(summary) == {"source", "pages", "records", "recorded", "duplicates", "seconds"}
    assert summary["source"] == "sf-contacts"
    assert summary["recorded"] == RECORDS  # the totals span the interruption
    assert summary["records"] == summary["recorded"] + summary["duplicates"]
    assert summary["duplicates"] <= PAGE  # at most the page it stood in, listed again
    assert setup.events() == RECORDS
    assert "records" in err and "ETA" in err and "/s" in err  # the progress bar
    assert setup.progress() == {}  # finished: a next backfill starts afresh

    again = setup.backfill()
    out, _ = again.communicate(timeout=120)
    rerun = json.loads(out)
    assert (rerun["recorded"], rerun["duplicates"]) == (0, RECORDS)
    assert setup.events() == RECORDS
