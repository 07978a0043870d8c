"""The operator's side of alerting: `crmhub alerts [--json]`, `crmhub alerts test`,
`crmhub health`, `crmhub audit [--strict]` (core/alerting/service.py, core/health.py,
core/audit.py) and the scheduled health report (core/alerting/report.py), on fakeredis."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from conftest import crmhub, hub_ledger, make_settings
from hubtest import CRM_CONFIG, CRM_ENV, accept_webhook, stripe_event

from core.alerting.report import last_slot, maybe_send_report, report_due
from core.alerting.service import evaluate_alerts, send_notices
from core.config import load_config
from core.config.alerting import ReportSchedule
from core.errors import ConfigError
from core.health import health_report, percentile
from core.vocabulary import AttemptOutcome, DeadCategory

T0 = time.time() - 3600


class Hub:
    def __init__(self, write_config: Any, key_prefix: str, yaml: str = CRM_CONFIG, **env: str):
        self.settings = make_settings(write_config(yaml), key_prefix, **CRM_ENV, **env)
        self.config = load_config(self.settings.config_path, self.settings.environ)
        self.ledger = hub_ledger(self.settings, fakeredis.FakeRedis())
        self.n = 0

    def cli(self, *args: str) -> Any:
        return crmhub(self.settings, *args, ledger=self.ledger)

    def delivery(self, outcome: AttemptOutcome, at: float = T0, took: float = 0.2) -> str:
        self.n += 1
        event = stripe_event(f"evt_{self.n}", email=f"u{self.n}@x.io")
        [accepted] = accept_webhook(self.config, self.ledger, event, now=at)
        [d] = accepted.deliveries
        self.ledger.claim(d.id, token="t", now=at + took, lease_seconds=60)
        self.ledger.finish(
            d.id,
            token="t",
            now=at + took,
            outcome=outcome,
            attempt={},
            error="rejected (HTTP 422)" if outcome == AttemptOutcome.DEAD else "",
            category=DeadCategory.VALIDATION if outcome == AttemptOutcome.DEAD else None,
        )
        return d.id


@pytest.fixture
def hub(write_config: Any, key_prefix: str) -> Hub:
    return Hub(write_config, key_prefix)


# crmhub alerts ---------------------------------------------------------------------------
def test_crmhub_alerts_lists_firing_and_recent_with_what_each_sink_was_sent(hub: Hub) -> None:
    hub.delivery(AttemptOutcome.DEAD)
    evaluate_alerts(hub.ledger, hub.config, sinks=["oncall", "pager"], now=T0 + 1)
    send_notices(
        hub.ledger,
        {"oncall": lambda alert: None, "pager": lambda alert: (_ for _ in ()).throw(OSError("x"))},
        now=T0 + 2,
    )
    result = hub.cli("alerts", "--json")
    assert result.exit_code == 0, result.output
    [alert] = json.loads(result.output)["alerts"]
    assert {k: alert[k] for k in ("kind", "status", "connection", "source", "resolved_at")} == {
        "kind": "dead_letters",
        "status": "firing",
        "connection": "crm",
        "source": None,
        "resolved_at": None,
    }
    assert alert["id"].startswith("alt_") and alert["fired_at"].endswith("Z")
    sent = {n["sink"]: n for n in alert["notifications"]}
    assert sent["oncall"]["ok"] is True and sent["oncall"]["at"].endswith("Z")
    assert sent["pager"]["ok"] is False and "OSError" in sent["pager"]["error"]
    text = hub.cli("alerts").output
    assert "FIRING" in text and "what to do: crmhub dlq list --connection crm" in text
    assert "firing -> pager: NOT SENT (OSError: x)" in text

    # the group cleared: resolved, and still listed among the recent ones
    [dead] = hub.ledger.dead_ids()
    hub.cli("dlq", "discard", dead, "--reason", "test")
    evaluate_alerts(hub.ledger, hub.config, sinks=["oncall"], now=T0 + 3)
    [alert] = json.loads(hub.cli("alerts", "--json").output)["alerts"]
    assert alert["status"] == "resolved" and alert["resolved_at"]


def test_crmhub_alerts_test_reports_each_sink_and_fails_without_any(
    write_config: Any, key_prefix: str
) -> None:
    bare = Hub(write_config, key_prefix)
    result = bare.cli("alerts", "test")
    assert result.exit_code == 1 and "no alert sinks" in result.output
    refusing = Hub(write_config, key_prefix, CRMHUB_ALERT_WEBHOOK_URL="http://127.0.0.1:9/x")
    result = refusing.cli("alerts", "test", "--json")
    assert result.exit_code == 1
    [row] = json.loads(result.output)["sinks"]
    assert row["sink"] == "webhook" and row["ok"] is False and "unreachable" in row["error"]


# the health check ------------------------------------------------------------------------
def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_health_counts_deliveries_latency_and_alerts_per_connection(hub: Hub) -> None:
    for took in (0.1, 0.2, 0.3, 0.4):
        hub.delivery(AttemptOutcome.DELIVERED, took=took)
    hub.delivery(AttemptOutcome.DEAD)
    evaluate_alerts(hub.ledger, hub.config, sinks=[], now=T0 + 1)
    report = health_report(hub.ledger, hub.config, 86400)
    [conn] = report["connections"]
    assert conn["connection"] == "crm" and conn["delivered"] == 4 and conn["dead"] == 1
    assert conn["success_rate"] == 0.8 and conn["alerts_fired"] == 1
    assert conn["latency_p50_ms"] == pytest.approx(200, abs=2)
    assert conn["latency_p95_ms"] == pytest.approx(400, abs=2)
    [source] = report["sources"]
    assert source["events_received"] == 5 and source["last_received_at"].endswith("Z")
    # outside the window: nothing
    old = health_report(hub.ledger, hub.config, 60)
    assert old["connections"][0]["delivered"] == 0 and old["sources"][0]["events_received"] == 0
    text = hub.cli("health", "--since", "1d").output
    assert "connection crm: 4 delivered, 1 dead (success 80.0%)" in text
    assert json.loads(hub.cli("health", "--json").output)["window"] == "7d"
    assert "duration" in hub.cli("health", "--since", "soon").output


# the audit -------------------------------------------------------------------------------
AUDITED = CRM_CONFIG + (
    "    integration: {owner: revops@example.com, purpose: Stripe customers as contacts,"
    " reviewed: %s}\n"
)


def test_audit_lists_each_integration_with_its_owner_and_flags(
    write_config: Any, key_prefix: str
) -> None:
    fresh = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    hub = Hub(write_config, key_prefix, AUDITED % fresh)
    assert hub.config.mappings["customer-to-contact"].integration.owner == "revops@example.com"
    [row] = json.loads(hub.cli("audit", "--json").output)["integrations"]
    assert row["mapping"] == "customer-to-contact" and row["direction"] == "source_to_connection"
    assert row["source"] == "stripe" and row["connection"] == "crm" and row["object"] == "contacts"
    assert row["owner"] == "revops@example.com" and row["reviewed"] == fresh
    assert row["flags"] == ["unused"] and row["last_success_at"] is None
    assert hub.cli("audit", "--strict").exit_code == 1
    hub.delivery(AttemptOutcome.DELIVERED, at=time.time() - 60)
    [row] = json.loads(hub.cli("audit", "--json").output)["integrations"]
    assert row["flags"] == [] and row["counts"]["delivered"] == 1 and row["last_event_at"]
    assert hub.cli("audit", "--strict").exit_code == 0


def test_audit_flags_no_owner_an_overdue_review_and_failing(
    write_config: Any, key_prefix: str
) -> None:
    stale = (date.today() - timedelta(days=400)).isoformat()
    hub = Hub(write_config, key_prefix, AUDITED.replace("owner: revops@example.com, ", "") % stale)
    now = time.time() - 60
    hub.delivery(AttemptOutcome.DELIVERED, at=now)
    hub.delivery(AttemptOutcome.DEAD, at=now)
    [row] = json.loads(hub.cli("audit", "--json").output)["integrations"]
    assert row["flags"] == ["no_owner", "review_overdue", "failing"]


def test_a_bad_integration_block_names_its_key(write_config: Any, key_prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"mappings.customer-to-contact.integration.reviewed"):
        Hub(write_config, key_prefix, AUDITED % "last spring")


# alerts: configuration -------------------------------------------------------------------
def test_the_alerts_block_is_checked_with_every_problem_named(
    write_config: Any, key_prefix: str
) -> None:
    yaml = (
        CRM_CONFIG
        + """
alerts:
  sinks:
    pager: {type: pagerduty}
    chat: {type: slack, url_env: UNSET_SLACK_URL}
    mail: {type: email, host: smtp.example.com}
    odd: {type: carrier_pigeon}
  rules:
    backlog_age: {older_than: soon}
    renotify_every: 4h
  report: {every: 7d, at: "Someday 25:00", timezone: Mars/Olympus, sinks: [nobody]}
"""
    )
    with pytest.raises(ConfigError) as info:
        Hub(write_config, key_prefix, yaml)
    text = str(info.value)
    for expected in (
        "alerts.sinks.pager.routing_key_env: required for a pagerduty sink",
        "alerts.sinks.chat.url_env: environment variable UNSET_SLACK_URL is not set",
        "alerts.sinks.mail.from: required for an email sink",
        "alerts.sinks.odd.type: unknown sink type",
        "alerts.rules.backlog_age.older_than: expected a duration",
        "alerts.report.at:",
        "alerts.report.timezone: unknown time zone",
        "alerts.report.sinks.0: no alert sink named 'nobody'",
    ):
        assert expected in text, expected


def test_rules_and_report_are_read_with_their_defaults(write_config: Any, key_prefix: str) -> None:
    yaml = (
        CRM_CONFIG
        + """
alerts:
  rules: {circuit_open: {after: 2m}, renotify_every: 1h, flap_window: 5m}
  report: {every: 7d, at: "Mon 09:00", timezone: Europe/London}
"""
    )
    config = Hub(write_config, key_prefix, yaml).config
    rules = config.alerts.rules
    assert (rules.circuit_open_after, rules.renotify_every, rules.flap_window) == (120, 3600, 300)
    assert rules.backlog_older_than == 900 and rules.credential_failures == 2
    assert config.alerts.report == ReportSchedule(
        every=604800, weekday=0, hour=9, minute=0, timezone="Europe/London"
    )


# the scheduled report --------------------------------------------------------------------
def test_a_weekly_report_is_due_at_its_slot_in_its_time_zone() -> None:
    weekly = ReportSchedule(every=7 * 86400, weekday=0, hour=9, timezone="Europe/London")
    # Thursday 3 Dec 2026, 18:00 London: the last slot is Monday 30 Nov, 09:00 London (UTC)
    thursday = datetime(2026, 12, 3, 18, 0, tzinfo=UTC).timestamp()
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()
    assert last_slot(weekly, thursday) == monday
    assert report_due(weekly, last_sent=monday - 7 * 86400, now=thursday)
    assert not report_due(weekly, last_sent=monday + 60, now=thursday)
    assert report_due(ReportSchedule(every=60), last_sent=thursday - 61, now=thursday)


def test_the_report_goes_to_every_sink_but_pagerduty_once_its_time_comes(
    write_config: Any, key_prefix: str
) -> None:
    yaml = (
        CRM_CONFIG
        + """
alerts:
  sinks:
    hook: {type: webhook, url_env: HOOK_URL}
    pager: {type: pagerduty, routing_key_env: PD_KEY}
  report: {every: 1h}
"""
    )
    hub = Hub(write_config, key_prefix, yaml, HOOK_URL="http://h", PD_KEY="k")
    sinks = ["hook", "pager"]
    now = time.time()
    assert not maybe_send_report(hub.ledger, hub.config, sinks=sinks, now=now)  # starts the clock
    assert not maybe_send_report(hub.ledger, hub.config, sinks=sinks, now=now + 60)
    assert maybe_send_report(hub.ledger, hub.config, sinks=sinks, now=now + 3600)
    [entry] = hub.ledger.alerts.entries()
    assert entry["sink"] == "hook" and entry["alert"]["kind"] == "health_report"
    assert "connection crm" in entry["alert"]["details"]["text"]
