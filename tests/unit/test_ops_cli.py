"""The operator CLI (app/cli/ops_cmd.py over core/operations.py): status, pause, resume and the
dead-letter queue, run through click's CliRunner against a ledger on fakeredis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import crmhub, hub_ledger, make_settings
from hubtest import accept_webhook, stripe_event

from app.cli.common import EXIT_NOT_FOUND
from core.config import Config, load_config
from core.ledger import Ledger
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory

WriteConfig = Callable[..., Path]  # the conftest fixture

CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
connections:
  crm: {connector: http, base_url: "https://crm.example.com/api"}
  erp: {connector: http, base_url: "https://erp.example.com/api"}
mappings:
  customer-to-contact:
    source: stripe
    when: {event_type: customer.updated}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields: {email: data.object.email, name: data.object.name}
  customer-to-account:
    source: stripe
    when: {event_type: customer.updated}
    connection: erp
    object: accounts
    match: {field: id, from: data.object.id}
    fields: {id: data.object.id}
"""
ENV = {"STRIPE_WEBHOOK_SECRET": "whsec_test_0123456789"}
STATES = [
    "pending",
    "in_flight",
    "scheduled",
    "held",
    "delivered",
    "dead",
    "superseded",
    "discarded",
]


class Ops:
    def __init__(self, settings: Settings, config: Config, ledger: Ledger) -> None:
        self.settings = settings
        self.config = config
        self.ledger = ledger
        self.n = 0

    def cli(self, *args: str, stdin: str | None = None) -> Result:
        return crmhub(self.settings, *args, config=self.config, ledger=self.ledger, stdin=stdin)

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def receive(self, now: float | None = None) -> dict[str, str]:
        """Record one Stripe customer.updated; {connection: delivery id}."""
        self.n += 1
        body = stripe_event(
            f"evt_{self.n}",
            type_="customer.updated",
            email=f"user{self.n}@example.com",
            id=f"cus_{self.n}",
        )
        [event] = accept_webhook(self.config, self.ledger, body, now=now)
        return {d.connection: d.id for d in event.deliveries}

    def kill(
        self,
        connection: str,
        category: str = "rejected_by_target",
        error: str = "target rejected the record (HTTP 422)",
        now: float | None = None,
    ) -> str:
        now = time.time() if now is None else now
        delivery_id = self.receive(now)[connection]
        assert (
            self.ledger.claim(delivery_id, token="t", now=now, lease_seconds=60).status == "claimed"
        )
        self.ledger.finish(
            delivery_id,
            token="t",
            now=now,
            outcome=AttemptOutcome.DEAD,
            attempt={"at": now, "outcome": "dead", "status": 422},
            category=DeadCategory(category),
            error=error,
            dead_letter={"record": {"fields": {"email": "x"}}, "problems": []},
        )
        return delivery_id

    def state(self, delivery_id: str) -> str:
        return self.ledger.raw_delivery(delivery_id)["state"]

    def actions(self, delivery_id: str) -> list[dict[str, Any]]:
        view = self.ledger.delivery(delivery_id, history=True)
        assert view is not None
        return list(view["actions"])


@pytest.fixture
def ops(write_config: WriteConfig, key_prefix: str) -> Ops:
    path = write_config(CONFIG)
    settings = make_settings(path, key_prefix, redis_url="redis://unused", **ENV)
    config = load_config(path, settings.environ)
    return Ops(settings, config, hub_ledger(settings))


def iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# status ---------------------------------------------------------------------------------
def test_status_json_lists_every_connection_with_zero_counts_at_first(ops: Ops) -> None:
    rows = ops.json("status")["connections"]
    assert [r["name"] for r in rows] == ["crm", "erp"]
    for row in rows:
        assert row["paused"] is False
        assert row["pause_reason"] is None and row["paused_since"] is None
        assert row["counts"] == {state: 0 for state in STATES}
        assert row["last_success_at"] is None
        assert row["last_failure_at"] is None and row["last_failure"] is None


def test_status_json_shows_counts_pause_and_last_outcomes(ops: Ops) -> None:
    started = time.time()
    ops.kill("crm", error="target rejected the record (HTTP 400)")  # +1 erp pending
    delivered = ops.receive()["crm"]  # +1 erp pending
    ops.ledger.claim(delivered, token="d", now=time.time(), lease_seconds=60)
    ops.ledger.finish(
        delivered, token="d", now=time.time(), outcome=AttemptOutcome.DELIVERED, attempt={}
    )
    assert ops.cli("pause", "erp", "--reason", "maintenance").exit_code == 0

    rows = {r["name"]: r for r in ops.json("status")["connections"]}
    crm, erp = rows["crm"], rows["erp"]
    assert set(crm) >= {
        "name",
        "paused",
        "pause_reason",
        "paused_since",
        "counts",
        "last_success_at",
        "last_failure_at",
        "last_failure",
    }
    assert crm["counts"] == {**{s: 0 for s in STATES}, "dead": 1, "delivered": 1}
    assert crm["paused"] is False
    assert crm["last_failure"] == "target rejected the record (HTTP 400)"
    assert started - 1 <= iso(crm["last_failure_at"]) <= time.time()
    assert started - 1 <= iso(crm["last_success_at"]) <= time.time()

    assert erp["counts"]["pending"] == 2 and sum(erp["counts"].values()) == 2
    assert erp["paused"] is True and erp["pause_reason"] == "maintenance"
    assert started - 1 <= iso(erp["paused_since"]) <= time.time()
    assert erp["last_success_at"] is None


def test_status_text_is_readable(ops: Ops) -> None:
    ops.cli("pause", "crm", "--reason", "auth")
    result = ops.cli("status")
    assert result.exit_code == 0
    assert "crm [http]: PAUSED (auth since" in result.output
    assert "erp [http]: active" in result.output
    # `connections` is an alias
    assert ops.cli("connections").output == result.output


# pause / resume -------------------------------------------------------------------------
def test_pause_holds_new_deliveries_and_resume_releases_them(ops: Ops) -> None:
    assert ops.json("pause", "crm", "--reason", "credential rotation") == {
        "connection": "crm",
        "paused": True,
        "changed": True,
    }
    assert ops.json("pause", "crm") == {"connection": "crm", "paused": True, "changed": False}
    info = ops.ledger.pause_info("crm")
    assert info is not None and info["reason"] == "credential rotation"
    assert info["by"].endswith("(cli)")

    held = [ops.receive()["crm"] for _ in range(3)]
    assert {ops.state(d) for d in held} == {"held"}

    assert ops.json("resume", "crm") == {"connection": "crm", "paused": False, "released": 3}
    assert {ops.state(d) for d in held} == {"pending"}
    assert ops.ledger.pause_info("crm") is None
    text = ops.cli("resume", "crm")
    assert text.exit_code == 0 and "0 held deliveries released" in text.output


@pytest.mark.parametrize(
    "args",
    [
        ["pause", "crn"],
        ["resume", "crn"],
        ["dlq", "list", "--connection", "crn"],
        ["dlq", "replay", "--all", "--connection", "crn"],
    ],
)
def test_an_unknown_connection_is_refused_with_the_configured_names(
    ops: Ops, args: list[str]
) -> None:
    ops.kill("crm")
    result = ops.cli(*args)
    assert result.exit_code == EXIT_NOT_FOUND
    # a typo must not look like "no dead letters" or "nothing to replay"
    assert "no connection named 'crn' (configured: crm, erp)" in result.stderr
    assert ops.ledger.pause_info("crn") is None
    assert len(ops.json("dlq", "list")["dead_letters"]) == 1


# dlq list / show ------------------------------------------------------------------------
def test_dlq_list_json_newest_first_with_filters(ops: Ops) -> None:
    now = time.time()
    old = ops.kill(
        "crm", category="mapping", error="mapping failed: email: required", now=now - 3 * 3600
    )
    crm = ops.kill("crm", now=now - 60)
    erp = ops.kill(
        "erp", category="retries_exhausted", error="gave up after 12 attempts", now=now - 30
    )

    rows = ops.json("dlq", "list")["dead_letters"]
    assert [r["id"] for r in rows] == [erp, crm, old]
    first = rows[0]
    assert set(first) >= {"id", "event_id", "connection", "mapping", "category", "error", "dead_at"}
    assert first["connection"] == "erp" and first["mapping"] == "customer-to-account"
    assert first["category"] == "retries_exhausted"
    assert first["error"] == "gave up after 12 attempts"
    assert first["event_id"].startswith("evt_")
    assert abs(iso(first["dead_at"]) - (now - 30)) < 0.01

    def ids(*filters: str) -> list[str]:
        return [r["id"] for r in ops.json("dlq", "list", *filters)["dead_letters"]]

    assert ids("--connection", "crm") == [crm, old]
    assert ids("--category", "mapping") == [old]
    assert ids("--connection", "crm", "--category", "retries_exhausted") == []
    assert ids("--since", "1h") == [erp, crm]
    assert ids("--limit", "1") == [erp]


def test_dlq_list_rejects_an_unknown_category(ops: Ops) -> None:
    result = ops.cli("dlq", "list", "--category", "rejected")
    assert result.exit_code == 2
    assert "rejected_by_target" in result.output  # the choices are listed


def test_dlq_list_text(ops: Ops) -> None:
    assert "no dead letters" in ops.cli("dlq", "list").output
    d = ops.kill("crm")
    line = ops.cli("dlq", "list").output
    assert d in line and "rejected_by_target" in line and "HTTP 422" in line


def test_dlq_show_has_the_reason_the_record_the_attempts_and_the_event(ops: Ops) -> None:
    d = ops.kill("crm")
    shown = ops.json("dlq", "show", d)
    assert shown["id"] == d and shown["state"] == "dead"
    assert shown["dead"]["category"] == "rejected_by_target"
    assert shown["dead"]["record"] == {"record": {"fields": {"email": "x"}}, "problems": []}
    assert [a["status"] for a in shown["attempt_history"]] == [422]
    assert shown["event"]["body"]["data"]["object"]["email"] == "user1@example.com"
    text = ops.cli("dlq", "show", d)
    assert text.exit_code == 0 and "event body:" in text.output


def test_dlq_show_of_an_unknown_id_exits_not_found(ops: Ops) -> None:
    result = ops.cli("dlq", "show", "dlv_nope")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "no delivery 'dlv_nope'" in result.stderr


# dlq replay / discard -------------------------------------------------------------------
def test_dlq_replay_by_id(ops: Ops) -> None:
    d, other = ops.kill("crm"), ops.kill("crm")
    assert ops.json("dlq", "replay", d, "--no-wait") == {
        "replayed": [d],
        "not_dead": {},
        "outcome": None,
    }
    assert ops.state(d) == "pending" and ops.state(other) == "dead"
    actions = ops.actions(d)
    assert actions[0]["action"] == "replay" and actions[0]["by"].endswith("(cli)")
    assert [r["id"] for r in ops.json("dlq", "list")["dead_letters"]] == [other]


def test_dlq_replay_all_with_filters(ops: Ops) -> None:
    crm1, crm2, erp = ops.kill("crm"), ops.kill("crm", category="mapping"), ops.kill("erp")
    result = ops.json("dlq", "replay", "--all", "--connection", "crm", "--no-wait")
    assert sorted(result["replayed"]) == sorted([crm1, crm2])
    assert (ops.state(crm1), ops.state(crm2), ops.state(erp)) == ("pending", "pending", "dead")
    assert ops.json("dlq", "replay", "--all", "--no-wait")["replayed"] == [erp]
    text = ops.cli("dlq", "replay", "--all", "--no-wait")
    assert text.exit_code == 0 and "0 replayed" in text.output


def test_dlq_replay_needs_ids_or_all_but_not_both(ops: Ops) -> None:
    d = ops.kill("crm")
    for args in ([], [d, "--all"]):
        result = ops.cli("dlq", "replay", *args)
        assert result.exit_code == 2
        assert "give delivery ids, or --all" in result.stderr
    assert ops.state(d) == "dead"


def test_dlq_replay_of_a_delivery_that_is_not_dead_is_refused(ops: Ops) -> None:
    pending = ops.receive()["crm"]
    result = ops.cli("dlq", "replay", pending, "dlv_missing", "--no-wait")
    assert result.exit_code == EXIT_NOT_FOUND
    assert f"{pending}: not dead (state pending)" in result.output
    assert "dlv_missing: not dead (state missing)" in result.output
    assert ops.state(pending) == "pending"


def test_dlq_discard_records_who_and_why(ops: Ops) -> None:
    d, kept = ops.kill("crm"), ops.kill("crm")
    result = ops.json("dlq", "discard", d, "--reason", "test customer, not real")
    assert result == {"discarded": [d], "not_dead": {}}
    assert ops.state(d) == "discarded" and ops.state(kept) == "dead"
    [action] = ops.actions(d)
    assert action["action"] == "discard"
    assert action["reason"] == "test customer, not real"
    assert action["by"].endswith("(cli)")
    # discarded is final
    again = ops.cli("dlq", "replay", d, "--no-wait")
    assert again.exit_code == EXIT_NOT_FOUND and "state discarded" in again.output


def test_dlq_discard_requires_a_reason(ops: Ops) -> None:
    d = ops.kill("crm")
    result = ops.cli("dlq", "discard", d)
    assert result.exit_code == 2
    assert "--reason" in result.output
    assert ops.state(d) == "dead"


class FakeWorker(threading.Thread):
    """Stands in for the Celery worker: takes each delivery of `plan` once it is pending
    again and ends it as planned: "delivered", or (category, error) to die again."""

    def __init__(self, ledger: Ledger, plan: dict[str, str | tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.ledger = ledger
        self.plan = dict(plan)

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while self.plan and time.monotonic() < deadline:
            for delivery_id, end in list(self.plan.items()):
                now = time.time()
                if (
                    self.ledger.claim(delivery_id, token="w", now=now, lease_seconds=60).status
                    != "claimed"
                ):
                    continue
                category, error = end if isinstance(end, tuple) else ("", "")
                self.ledger.finish(
                    delivery_id,
                    token="w",
                    now=now,
                    outcome=AttemptOutcome.DELIVERED if end == "delivered" else AttemptOutcome.DEAD,
                    attempt={"at": now},
                    category=DeadCategory(category) if category else None,
                    error=error,
                )
                del self.plan[delivery_id]
            time.sleep(0.02)


def test_dlq_replay_waits_and_reports_delivered_dead_again_and_why(ops: Ops) -> None:
    """Before: "3 replayed", though two of them died again at once."""
    fixed, again1, again2 = ops.kill("crm"), ops.kill("crm"), ops.kill("crm")
    required = ("mapping", "mapping failed: email: required")
    FakeWorker(ops.ledger, {fixed: "delivered", again1: required, again2: required}).start()
    result = ops.cli("dlq", "replay", fixed, again1, again2)
    assert result.exit_code == 1, result.output  # some died again
    first, *rest = result.output.splitlines()
    assert first.startswith("3 replayed: 1 delivered, 2 dead again, 0 still pending (after ")
    assert "  dead again: 2 mapping: mapping failed: email: required" in rest
    assert (ops.state(fixed), ops.state(again1)) == ("delivered", "dead")


def test_dlq_replay_json_gives_the_same_outcome(ops: Ops) -> None:
    fixed, again = ops.kill("crm"), ops.kill("crm")
    FakeWorker(
        ops.ledger, {fixed: "delivered", again: ("rejected_by_target", "HTTP 422: bad phone")}
    ).start()
    result = ops.cli("dlq", "replay", fixed, again, "--json")
    assert result.exit_code == 1
    outcome = json.loads(result.stdout)["outcome"]
    assert outcome["counts"] == {
        "delivered": 1,
        "dead": 1,
        "pending": 0,
        "scheduled": 0,
        "held": 0,
        "superseded": 0,
    }
    assert outcome["dead_reasons"] == [
        {"category": "rejected_by_target", "error": "HTTP 422: bad phone", "count": 1}
    ]
    assert outcome["settled"] is True and 0 <= outcome["waited_seconds"] < 5


def test_dlq_replay_says_what_is_still_pending_when_the_wait_runs_out(ops: Ops) -> None:
    a, b = ops.kill("crm"), ops.kill("crm")  # and no worker running
    began = time.monotonic()
    result = ops.cli("dlq", "replay", a, b, "--wait", "0.5")
    assert result.exit_code == 0, result.output
    assert 0.5 <= time.monotonic() - began < 5  # the wait is bounded
    assert result.output.startswith(
        "2 replayed: 0 delivered, 0 dead again, 2 still pending (after 0.5 s)"
    )
    assert "is the worker running?" in result.output
    payload = ops.json("dlq", "replay", "--all", "--wait", "0")  # nothing left to replay
    assert payload == {"replayed": [], "not_dead": {}, "outcome": None}


def test_dlq_replay_no_wait_says_they_were_queued(ops: Ops) -> None:
    d = ops.kill("crm")
    result = ops.cli("dlq", "replay", d, "--no-wait")
    assert result.exit_code == 0
    assert result.output.startswith("1 replayed: queued for delivery (not waited for")


def test_dlq_list_says_there_are_more_and_how_to_page(ops: Ops) -> None:
    """Before: `dlq list` stopped at 100 rows without a word."""
    now = time.time()
    ids = [ops.kill("crm", now=now - 200 + i) for i in range(101)]  # ids[-1] is the newest
    result = ops.cli("dlq", "list")
    lines = result.output.splitlines()
    assert len(lines) == 101 and lines[0].startswith(ids[-1])
    assert lines[-1] == "... 1 more (showing 1-100 of 101); next page: crmhub dlq list --offset 100"
    last = ops.cli("dlq", "list", "--offset", "100").output.splitlines()
    assert len(last) == 1 and last[0].startswith(ids[0])

    page = ops.json("dlq", "list", "--limit", "40", "--offset", "40")
    assert [r["id"] for r in page["dead_letters"]] == ids[::-1][40:80]
    assert (page["total"], page["offset"], page["next_offset"]) == (101, 40, 80)
    assert ops.json("dlq", "list", "--offset", "100")["next_offset"] is None


def test_dlq_list_pages_with_filters_too(ops: Ops) -> None:
    now = time.time()
    crm = [ops.kill("crm", now=now - 100 + i) for i in range(3)]
    ops.kill("erp", now=now)
    result = ops.cli("dlq", "list", "--connection", "crm", "--since", "1h", "--limit", "2")
    assert result.output.splitlines()[-1] == (
        "... 1 more (showing 1-2 of 3); next page: crmhub dlq list --connection crm "
        "--since 1h --offset 2 --limit 2"
    )
    page = ops.json("dlq", "list", "--connection", "crm", "--limit", "2", "--offset", "2")
    assert [r["id"] for r in page["dead_letters"]] == [crm[0]]
    assert (page["total"], page["next_offset"]) == (3, None)


def test_dlq_discard_all_with_filters_asks_first_then_discards(ops: Ops) -> None:
    """Before: discard took ids only, so 300 dead letters meant 300 ids typed out."""
    crm1, crm2, erp = ops.kill("crm"), ops.kill("crm", category="mapping"), ops.kill("erp")
    args = ["dlq", "discard", "--all", "--connection", "crm", "--reason", "test data"]
    declined = ops.cli(*args, stdin="n\n")
    assert declined.exit_code == 1
    assert "Discard 2 dead letter(s) for good (--connection crm)?" in declined.output
    assert {ops.state(crm1), ops.state(crm2)} == {"dead"}

    accepted = ops.cli(*args, stdin="y\n")
    assert accepted.exit_code == 0 and "2 discarded" in accepted.output
    assert (ops.state(crm1), ops.state(crm2), ops.state(erp)) == ("discarded", "discarded", "dead")
    assert ops.actions(crm1)[0]["reason"] == "test data"


def test_dlq_discard_all_with_yes_does_not_ask(ops: Ops) -> None:
    mapping, other = ops.kill("crm", category="mapping"), ops.kill("crm")
    for args in ([], [other, "--all"], [other, "--connection", "crm"]):  # ids, or --all
        assert ops.cli("dlq", "discard", *args, "--reason", "x", "--yes").exit_code == 2
    result = ops.json("dlq", "discard", "--all", "--category", "mapping", "--reason", "x", "--yes")
    assert result == {"discarded": [mapping], "not_dead": {}}
    assert ops.state(other) == "dead"
