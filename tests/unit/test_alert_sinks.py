"""Alert sinks (core/alerting/sinks.py) and the notice they carry (core/alerting/notices.py):
the generic webhook's body, PagerDuty Events API v2, Slack, email, the default webhook of
CRMHUB_ALERT_WEBHOOK_URL; and the settings and YAML keys alerting reads."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from ports import free_port

from core.alerting.model import AlertState
from core.alerting.notices import notice
from core.alerting.sinks import (
    build_senders,
    pagerduty_event,
    sink_names,
    text_body,
    webhook_sender,
)
from core.config.alerting import AlertsConfig, SinkConfig
from core.config.durations import format_duration, parse_duration
from core.errors import AlertSinkError, ConfigError, DurationSyntaxError
from core.settings import Settings

T0 = 1_800_000_000.0


def state(**changes: Any) -> AlertState:
    base = AlertState(
        key="dead_letters:crm:validation",
        id="alt_1",
        kind="dead_letters",
        status="firing",
        summary="3 dead letters for connection 'crm' (validation)",
        details={"count": 3, "category": "validation", "command": "crmhub dlq list"},
        connection="crm",
        fired_at=T0,
    )
    return AlertState(**{**base.as_json(), **changes})


def test_the_webhook_body_is_the_documented_shape() -> None:
    body = notice(state(), None, T0 + 5)
    assert {k: body[k] for k in list(body)[:10]} == {
        "id": "alt_1",
        "kind": "dead_letters",
        "status": "firing",
        "severity": "error",
        "connection": "crm",
        "source": None,
        "summary": "3 dead letters for connection 'crm' (validation)",
        "details": {"count": 3, "category": "validation", "command": "crmhub dlq list"},
        "dedup_key": "dead_letters:crm:validation",
        "at": "2027-01-15T08:00:05Z",
    }
    assert body["links"] == {}


def test_crmhub_public_url_gives_each_alert_its_dashboard_link() -> None:
    settings = Settings.from_env({"CRMHUB_PUBLIC_URL": "https://hub.example.com/"})
    assert settings.public_url == "https://hub.example.com"
    dead = notice(state(), settings.public_url, T0)
    assert dead["links"] == {
        "dashboard": "https://hub.example.com/ui/dead-letters?connection=crm&category=validation"
    }
    paused = notice(state(kind="connection_paused", key="connection_paused:crm"), "https://h", T0)
    assert paused["links"] == {"dashboard": "https://h/ui/connections/crm"}


def test_pagerduty_triggers_and_resolves_on_the_same_dedup_key() -> None:
    fired = pagerduty_event(notice(state(), "https://h", T0), "RKEY")
    assert (
        fired["event_action"] == "trigger" and fired["dedup_key"] == "dead_letters:crm:validation"
    )
    assert fired["routing_key"] == "RKEY"
    assert fired["payload"]["severity"] == "error" and fired["payload"]["source"] == "crm"
    assert fired["payload"]["custom_details"]["count"] == 3
    assert fired["links"][0]["href"].startswith("https://h/ui/dead-letters")
    resolved = pagerduty_event(notice(state(status="resolved"), None, T0), "RKEY")
    assert resolved == {
        "routing_key": "RKEY",
        "event_action": "resolve",
        "dedup_key": "dead_letters:crm:validation",
    }


def test_slack_and_email_say_what_to_do() -> None:
    text = text_body(notice(state(), None, T0))
    assert text.startswith("[crmhub ERROR] 3 dead letters")
    assert "what to do: crmhub dlq list" in text
    assert text_body(notice(state(status="resolved"), None, T0)).startswith("[crmhub RESOLVED]")


def recorder(answer: int = 200) -> tuple[list[httpx.Request], httpx.Client]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answer, json={"status": "success"})

    return seen, httpx.Client(transport=httpx.MockTransport(handle))


def test_each_sink_posts_where_it_is_configured() -> None:
    seen, client = recorder(202)
    alerts = AlertsConfig(
        sinks={
            "hook": SinkConfig("hook", "webhook", url_env="HOOK_URL"),
            "pager": SinkConfig(
                "pager", "pagerduty", routing_key_env="PD_KEY", events_url="http://pd.test/v2"
            ),
            "chat": SinkConfig("chat", "slack", url_env="SLACK_URL"),
        }
    )
    env = {"HOOK_URL": "http://hook.test/a", "PD_KEY": "k", "SLACK_URL": "http://slack.test/x"}
    senders = build_senders(alerts, env, "http://ignored.test", client)
    body = notice(state(), None, T0)
    for name in ("hook", "pager", "chat"):
        senders[name](body)
    assert [str(r.url) for r in seen] == [
        "http://hook.test/a",
        "http://pd.test/v2",
        "http://slack.test/x",
    ]
    assert json.loads(seen[0].content) == body
    assert json.loads(seen[1].content)["event_action"] == "trigger"
    assert "text" in json.loads(seen[2].content)


def test_without_sinks_crmhub_alert_webhook_url_is_the_webhook_sink() -> None:
    assert sink_names(AlertsConfig(), "http://hook.test") == ["webhook"]
    assert sink_names(AlertsConfig(), None) == []
    seen, client = recorder()
    build_senders(AlertsConfig(), {}, "http://hook.test/oncall", client)["webhook"](
        notice(state(), None, T0)
    )
    assert [str(r.url) for r in seen] == ["http://hook.test/oncall"]


def test_a_refusing_sink_raises_and_one_missing_its_secret_refuses_every_notice() -> None:
    _, client = recorder(500)
    with pytest.raises(AlertSinkError, match="HTTP 500"):
        webhook_sender("http://hook.test", client)(notice(state(), None, T0))
    alerts = AlertsConfig(sinks={"hook": SinkConfig("hook", "webhook", url_env="UNSET")})
    send = build_senders(alerts, {}, None, client)["hook"]
    with pytest.raises(AlertSinkError, match="UNSET is unset"):
        send(notice(state(), None, T0))


def test_email_goes_over_smtp() -> None:
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.content)
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        sink = SinkConfig(
            "mail", "email", host="127.0.0.1", port=smtp.port, sender="hub@x.io", to=("a@x.io",)
        )
        build_senders(AlertsConfig(sinks={"mail": sink}), {}, None, httpx.Client())["mail"](
            notice(state(), None, T0)
        )
    finally:
        smtp.stop()
    [message] = received
    assert b"Subject: [crmhub ERROR] 3 dead letters" in message
    assert b"what to do: crmhub dlq list" in message


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("6h", 21600), ("7d", 604800), (30, 30)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_says_what_is_expected() -> None:
    for bad in ("5x", "", "-3m", "0s", True):
        with pytest.raises(DurationSyntaxError, match="duration"):
            parse_duration(bad)
    assert format_duration(5400) == "90m" and format_duration(604800) == "7d"


def test_alerting_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {"CRMHUB_ALERT_INTERVAL_SECONDS": "1", "CRMHUB_LOG_FORMAT": "JSON"}
    )
    assert settings.alert_interval_seconds == 1 and settings.log_format == "json"
    assert Settings.from_env({}).alert_interval_seconds == 5
    with pytest.raises(ConfigError, match="CRMHUB_LOG_FORMAT: expected one of text, json"):
        Settings.from_env({"CRMHUB_LOG_FORMAT": "xml"})


def test_the_beat_evaluates_alerts_every_crmhub_alert_interval_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRMHUB_REDIS_URL", "redis://127.0.0.1:9/0")  # read as it is imported
    from workers.celery_app import make_celery

    app = make_celery(
        Settings.from_env(
            {"CRMHUB_ALERT_INTERVAL_SECONDS": "2", "CRMHUB_REDIS_URL": "redis://127.0.0.1:9/0"}
        )
    )
    assert app.conf.beat_schedule["send-alerts"]["schedule"] == 2.0
    assert app.conf.beat_schedule["send-alerts"]["task"] == "crmhub.send_alerts"
