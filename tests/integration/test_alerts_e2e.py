"""Alerts end to end (issue proof): `crmhub serve` with a real Redis, the fake CRMs over
loopback, and local sinks for every channel (a JSON webhook, PagerDuty's Events API v2, a Slack
webhook, email over SMTP).

Each kind fires once when its condition starts and resolves once when it clears; 500 dead
letters make one notification; a source expected every 5 s that stops sending fires
went_quiet within 20 s and resolves on its next event; a sink that is down gets the alert
later. The scheduler evaluates every second here (CRMHUB_ALERT_INTERVAL_SECONDS=1).
"""

from __future__ import annotations

import email
import json
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import (
    CRMHUB,
    AlertSink,
    DemoTarget,
    FakeHubSpot,
    Hub,
    SentryCollector,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

CLIENT_ID, CLIENT_SECRET, REFRESH = "alerts-client", "alerts-client-secret", "alerts-refresh-1"

#: one source and connection per scenario, so each alert's key is the scenario's own
CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
  quiet:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    expect_activity_within: 5s
connections:
  locked: {{connector: http, base_url: {crm}}}
  dlq: {{connector: http, base_url: {crm}}}
  flaky:
    connector: http
    base_url: {crm}
    retry: {{base_seconds: 0.2, max_seconds: 0.5}}
  quietconn: {{connector: http, base_url: {crm}, expect_success_within: 5s}}
  hs:
    connector: hubspot
    base_url: {hubspot}
    auth: {{type: oauth2, client_id_env: HUBSPOT_CLIENT_ID,
            client_secret_env: HUBSPOT_CLIENT_SECRET, refresh_token_env: HUBSPOT_REFRESH_TOKEN,
            token_url: "{hubspot}/oauth/v1/token"}}
mappings:
{mappings}
alerts:
  sinks:
    oncall: {{type: webhook, url_env: ALERT_URL}}
    pager: {{type: pagerduty, routing_key_env: PD_ROUTING_KEY, events_url: "{sink}/pagerduty"}}
    chat: {{type: slack, url_env: SLACK_URL}}
    mail: {{type: email, host: 127.0.0.1, port: {smtp}, from: crmhub@example.com,
            to: [oncall@example.com]}}
  rules:
    circuit_open: {{after: 1s}}
    backlog_age: {{older_than: 3s}}
    renotify_every: 1h
    flap_window: 1s
  report: {{every: 10s, sinks: [oncall]}}
"""
MAPPING = """\
  {name}:
    source: {source}
    connection: {connection}
    object: {object}
    match: {{field: email, from: data.object.email, normalize: email}}
    fields: {{email: data.object.email, {name_field}: data.object.name}}
"""
SCENARIOS = {  # mapping -> (source, connection, object)
    "to-locked": ("stripe", "locked", "locked_obj"),
    "to-dlq": ("stripe", "dlq", "dlq_obj"),
    "to-flaky": ("stripe", "flaky", "flaky_obj"),
    "to-quiet": ("quiet", "quietconn", "quiet_obj"),
    "to-hs": ("stripe", "hs", "contacts"),
}
TYPES = {name: f"{name}.created" for name in SCENARIOS}


def mappings() -> str:
    out = []
    for name, (source, connection, obj) in SCENARIOS.items():
        out.append(
            MAPPING.format(
                name=name,
                source=source,
                connection=connection,
                object=obj,
                name_field="lastname" if connection == "hs" else "name",
            )
            + f"    when: {{event_type: {TYPES[name]}}}\n"
        )
    return "".join(out)


@dataclass
class Mailbox:
    messages: list[email.message.Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Run:
    hub: Hub
    crm: DemoTarget
    hubspot: FakeHubSpot
    sink: AlertSink  # oncall webhook + PagerDuty's events URL
    chat: AlertSink  # Slack: down at first
    mailbox: Mailbox
    sentry: SentryCollector  # SENTRY_DSN points here
    n: int = 0

    def send(self, mapping: str, email_: str = "", source: str | None = None) -> None:
        self.n += 1
        event = stripe_event(
            f"evt_{uuid.uuid4().hex[:12]}", type_=TYPES[mapping], email=email_ or f"u{self.n}@x.io"
        )
        body, headers = signed("stripe", event, STRIPE_SECRET)
        src = source or SCENARIOS[mapping][0]
        response = self.hub.http.post(f"/webhooks/{src}", content=body, headers=headers)
        assert response.status_code == 202, response.text

    def notices(self, key: str) -> list[dict]:
        """What the on-call webhook received for a dedup key, in order."""
        return [a for a in self.sink.at("/alerts") if a["dedup_key"] == key]

    def status(self, connection: str) -> dict:
        rows = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
        return dict(next(r for r in rows if r["name"] == connection))

    def alerts(self) -> list[dict]:
        return list(json.loads(self.hub.cli("alerts", "--json").stdout)["alerts"])


def once_each(notices: list[dict]) -> dict[str, list[str]]:
    """alert id -> the statuses notified for it."""
    seen: dict[str, list[str]] = defaultdict(list)
    for notice in notices:
        seen[notice["id"]].append(notice["status"])
    return dict(seen)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, real_redis_url: str) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("alerts")
    crm = DemoTarget()
    hubspot = FakeHubSpot(
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
        "--refresh-token", REFRESH, "--token-ttl", "40",
    )  # fmt: skip
    sink, chat = AlertSink(), AlertSink()
    chat.down = True
    mailbox = Mailbox()
    sentry = SentryCollector()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    prefix = f"crmhub-alerts-{uuid.uuid4().hex[:10]}"
    config = tmp / "crmhub.yaml"
    config.write_text(
        CONFIG.format(
            crm=crm.url, hubspot=hubspot.url, sink=sink.base, smtp=smtp.port, mappings=mappings()
        )
    )
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp / "var"),
            "CRMHUB_ALERT_INTERVAL_SECONDS": "1",
            "CRMHUB_PUBLIC_URL": "https://hub.example.com",
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "HUBSPOT_CLIENT_ID": CLIENT_ID,
            "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
            "HUBSPOT_REFRESH_TOKEN": REFRESH,
            "ALERT_URL": sink.url,
            "SLACK_URL": chat.url,
            "PD_ROUTING_KEY": "R0UTINGKEY0000000000000000000000",
            "SENTRY_DSN": sentry.dsn,
        },
        tmp,
    )
    try:
        yield Run(hub, crm, hubspot, sink, chat, mailbox, sentry)
    finally:
        hub.stop()
        crm.stop()
        hubspot.stop()
        sink.stop()
        chat.stop()
        smtp.stop()
        sentry.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


def test_connection_paused_fires_once_reaches_every_sink_and_resolves_once(run: Run) -> None:
    key = "connection_paused:locked"
    run.crm.fault(mode="unauthorized", objects=["locked_obj"])
    run.send("to-locked")
    wait_until(lambda: run.notices(key), timeout=30, message="the paused alert")
    [firing] = run.notices(key)
    assert firing["status"] == "firing" and firing["kind"] == "connection_paused"
    assert firing["severity"] == "critical" and firing["connection"] == "locked"
    assert firing["source"] is None  # never the hub's own name
    assert firing["at"].endswith("Z") and "crmhub resume locked" in firing["details"]["command"]
    assert firing["links"] == {"dashboard": "https://hub.example.com/ui/connections/locked"}
    assert set(firing) >= {
        "id", "kind", "status", "severity", "connection", "source", "summary", "details",
        "dedup_key", "at",
    }  # fmt: skip

    # PagerDuty: a trigger with the dedup key
    wait_until(lambda: run.sink.at("/pagerduty"), timeout=15, message="the PagerDuty trigger")
    [trigger] = [e for e in run.sink.at("/pagerduty") if e["dedup_key"] == key]
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
    assert trigger["routing_key"] == "R0UTINGKEY0000000000000000000000"
    # email, over SMTP
    wait_until(lambda: run.mailbox.messages, timeout=15, message="the alert email")
    assert any("locked" in str(m["Subject"]) for m in run.mailbox.messages)
    # Slack is down: the notice is kept for it, visible as not sent
    wait_until(
        lambda: any(
            n["sink"] == "chat" and n["ok"] is False
            for a in run.alerts()
            if a["id"] == firing["id"]
            for n in a["notifications"]
        ),
        timeout=15,
        message="the refused Slack notice in `crmhub alerts`",
    )
    [row] = [a for a in run.alerts() if a["id"] == firing["id"]]
    assert row["status"] == "firing" and row["resolved_at"] is None
    assert {n["sink"] for n in row["notifications"] if n["ok"]} >= {"oncall", "pager", "mail"}
    # ... and gets the alert once it is back
    run.chat.down = False
    wait_until(
        lambda: any("locked" in m["text"] for m in run.chat.at("/alerts")),
        timeout=30,
        message="the Slack notice after the sink came back",
    )

    # Sentry: the worker reported it, one issue per dedup key, nothing secret in it
    wait_until(
        lambda: any(e.get("tags", {}).get("alert.kind") == "connection_paused"
                    for e in run.sentry.items),
        timeout=15,
        message="the alert in Sentry",
    )  # fmt: skip
    [event] = [e for e in run.sentry.items if e["tags"].get("alert.kind") == "connection_paused"]
    assert event["fingerprint"] == ["crmhub-alert", key]
    assert event["tags"]["crmhub.process"] == "worker" and event["level"] == "fatal"
    sent = json.dumps(run.sentry.items)
    for secret in (STRIPE_SECRET, CLIENT_SECRET, "R0UTINGKEY0000000000000000000000"):
        assert secret not in sent

    # resumed, then a delivery succeeds: resolved, once
    run.crm.clear_faults()
    run.hub.cli("resume", "locked")
    wait_until(lambda: len(run.notices(key)) == 2, timeout=30, message="the resolution")
    assert once_each(run.notices(key)) == {firing["id"]: ["firing", "resolved"]}
    wait_until(
        lambda: (
            [e["event_action"] for e in run.sink.at("/pagerduty") if e["dedup_key"] == key]
            == ["trigger", "resolve"]
        ),
        timeout=15,
        message="the PagerDuty resolve",
    )


def test_500_dead_letters_are_one_notification_resolved_when_discarded(run: Run) -> None:
    key = "dead_letters:dlq:rejected_by_target"
    run.crm.fault(mode="validation", objects=["dlq_obj"], field="email")
    for _ in range(500):
        run.send("to-dlq")
    wait_until(lambda: run.notices(key), timeout=30, message="the dead-letters alert")
    wait_until(
        lambda: run.status("dlq")["counts"].get("dead", 0) == 500,
        timeout=120,
        message="500 dead letters",
    )
    [firing] = run.notices(key)
    assert firing["details"]["category"] == "rejected_by_target"
    assert firing["details"]["sample_ids"] and "--connection dlq" in firing["details"]["command"]
    assert "HTTP 400" in firing["details"]["top_error"]
    # later dead letters are folded into the firing alert: `crmhub alerts` counts all 500
    wait_until(
        lambda: any(
            a["details"].get("count") == 500 for a in run.alerts() if a["id"] == firing["id"]
        ),
        timeout=15,
        message="the alert's count to reach 500",
    )
    assert len(run.notices(key)) == 1

    run.crm.clear_faults()
    run.hub.cli("dlq", "discard", "--all", "--connection", "dlq", "--reason", "test", "--yes")
    wait_until(lambda: len(run.notices(key)) == 2, timeout=30, message="the resolution")
    assert once_each(run.notices(key)) == {firing["id"]: ["firing", "resolved"]}


def test_circuit_open_and_backlog_age_fire_once_and_resolve_once(run: Run) -> None:
    circuit, backlog = "circuit_open:flaky", "backlog_age:flaky"
    before = run.status("flaky")["counts"].get("delivered", 0)
    run.crm.fault(mode="error500", status=503, objects=["flaky_obj"])
    for _ in range(3):
        run.send("to-flaky")
    wait_until(lambda: run.notices(circuit), timeout=60, message="the circuit alert")
    wait_until(lambda: run.notices(backlog), timeout=60, message="the backlog alert")
    run.crm.clear_faults()
    wait_until(
        lambda: len(run.notices(circuit)) == 2 and len(run.notices(backlog)) == 2,
        timeout=60,
        message="both to resolve",
    )
    assert [list(v) for v in once_each(run.notices(circuit)).values()] == [["firing", "resolved"]]
    assert [list(v) for v in once_each(run.notices(backlog)).values()] == [["firing", "resolved"]]
    assert run.status("flaky")["counts"].get("delivered") == before + 3


def test_a_quiet_source_and_connection_fire_went_quiet_and_resolve_on_activity(run: Run) -> None:
    source_key, conn_key = "went_quiet:source:quiet", "went_quiet:connection:quietconn"
    # counted from the hub's start: with no event in 5 s both fire (once) ...
    wait_until(lambda: run.notices(source_key), timeout=25, message="went_quiet (source)")
    wait_until(lambda: run.notices(conn_key), timeout=25, message="went_quiet (connection)")
    # ... and the next event resolves them (the connection's on its successful delivery)
    run.send("to-quiet")
    wait_until(
        lambda: (
            run.notices(source_key)[-1]["status"] == "resolved"
            and run.notices(conn_key)[-1]["status"] == "resolved"
        ),
        timeout=20,
        message="the resolutions",
    )
    # then it stops sending: went_quiet again within 20 s, and the next event resolves it
    seen = len(run.notices(source_key))
    wait_until(lambda: len(run.notices(source_key)) > seen, timeout=20, message="went_quiet again")
    run.send("to-quiet")
    wait_until(
        lambda: run.notices(source_key)[-1]["status"] == "resolved",
        timeout=20,
        message="the resolution",
    )
    notices = run.notices(source_key)  # (the next episode can start 5 s from now)
    for statuses in once_each(notices).values():
        assert statuses == ["firing", "resolved"]
    firing = notices[0]
    assert firing["source"] == "quiet" and firing["connection"] is None


def test_a_failing_token_refresh_warns_before_the_pause_and_resolves_on_success(
    run: Run,
) -> None:
    key = "credential_expiring:hs"

    def deliver(address: str) -> None:
        done = run.status("hs")["counts"].get("delivered", 0)
        run.send("to-hs", address)
        wait_until(
            lambda: run.status("hs")["counts"].get("delivered", 0) > done,
            timeout=30,
            message=f"the delivery for {address}",
        )

    deliver("first@example.com")  # the first token (40 s: refreshed on every use)
    run.hubspot.fault(mode="revoke_refresh_token")
    deliver("second@example.com")  # the refresh fails, the token in hand still works
    deliver("third@example.com")  # and again: on-call is warned
    wait_until(lambda: run.notices(key), timeout=30, message="the credential alert")
    [firing] = run.notices(key)
    assert firing["severity"] == "warning" and "auth set-refresh-token hs" in str(firing)
    assert not run.status("hs")["paused"]  # warned before, not after

    run.hubspot.http.post("/_control/refresh-token", json={"refresh_token": "alerts-refresh-2"})
    subprocess.run(
        [CRMHUB, "auth", "set-refresh-token", "hs"],
        input="alerts-refresh-2\n",
        env=run.hub.env,
        cwd=run.hub.cwd,
        text=True,
        check=True,
        capture_output=True,
    )
    deliver("fourth@example.com")
    wait_until(lambda: len(run.notices(key)) == 2, timeout=30, message="the resolution")
    assert once_each(run.notices(key)) == {firing["id"]: ["firing", "resolved"]}


def test_alerts_test_health_and_audit_on_the_running_hub(run: Run) -> None:
    run.chat.down = False
    before = len(run.sink.at("/alerts"))
    result = run.hub.cli("alerts", "test", "--json")
    assert {r["sink"]: r["ok"] for r in json.loads(result.stdout)["sinks"]} == {
        "oncall": True, "pager": True, "chat": True, "mail": True,
    }  # fmt: skip
    assert "test" in {a["kind"] for a in run.sink.at("/alerts")[before:]}

    # whatever ran before on this hub: one more delivery, and went_quiet fires for quietconn
    # within 5 s of the hub's start unless something is delivered there
    delivered = run.status("flaky")["counts"].get("delivered", 0)
    run.send("to-flaky")
    wait_until(
        lambda: run.status("flaky")["counts"].get("delivered", 0) > delivered,
        timeout=30,
        message="a delivery",
    )

    def health() -> dict:
        return dict(json.loads(run.hub.cli("health", "--since", "1h", "--json").stdout))

    wait_until(
        lambda: any(c["alerts_fired"] for c in health()["connections"]),
        timeout=30,
        message="an alert in the health report",
    )
    by_conn = {c["connection"]: c for c in health()["connections"]}
    assert by_conn["flaky"]["delivered"] >= 1 and by_conn["flaky"]["latency_p95_ms"] > 0
    assert by_conn["flaky"]["success_rate"] is not None
    assert by_conn["dlq"]["delivered"] == 0  # it never took a record
    assert {s["source"] for s in health()["sources"]} == {"stripe", "quiet"}

    # the scheduled health report reaches its sink (every 10 s here)
    wait_until(
        lambda: any(a["kind"] == "health_report" for a in run.sink.at("/alerts")),
        timeout=30,
        message="the scheduled health report",
    )
    report = next(a for a in run.sink.at("/alerts") if a["kind"] == "health_report")
    assert {c["connection"] for c in report["details"]["report"]["connections"]} >= {"dlq"}
    assert all(e.get("dedup_key") != "health_report" for e in run.sink.at("/pagerduty"))

    audit = json.loads(run.hub.cli("audit", "--json").stdout)
    rows = {r["mapping"]: r for r in audit["integrations"]}
    assert set(rows) == set(SCENARIOS)
    assert "no_owner" in rows["to-dlq"]["flags"] and "unused" in rows["to-dlq"]["flags"]
    assert "unused" not in rows["to-flaky"]["flags"] and rows["to-flaky"]["last_success_at"]
    strict = run.hub.cli("audit", "--strict", check=False)
    assert strict.returncode == 1
