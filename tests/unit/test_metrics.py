"""/metrics (issue 9, item 9): every answer counted by route, status class and source,
including 503s and 500s; bounded label values; one content type; an optional token."""

from __future__ import annotations

import time

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hubtest import stripe_event
from processes import wait_until
from test_receiver import PREFIX, client, metric_samples, post_stripe, settings  # noqa: F401

from app import create_app
from core.errors import ConfigError
from core.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def answers(samples: Samples) -> dict[tuple[str, str, str], float]:
    """crmhub_http_responses_total as {(route, status_class, source): count}."""
    return {
        (d["route"], d["status_class"], d["source"]): value
        for (name, labels), value in samples.items()
        if name == "crmhub_http_responses_total" and (d := dict(labels))
    }


def outcomes(samples: Samples, source: str) -> dict[str, float]:
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "crmhub_webhooks_total" and dict(labels)["source"] == source
    }


def test_every_answer_is_counted_by_route_status_class_and_source(client: FlaskClient) -> None:
    post_stripe(client, stripe_event("evt_1"))  # 202
    post_stripe(client, stripe_event("evt_1"))  # 200 duplicate
    post_stripe(client, stripe_event("evt_2"), secret="whsec_wrong")  # 401
    client.post("/webhooks/nosuch", data=b"{}")  # 404
    client.get("/healthz")
    client.get("/no/such/page")  # 404 from Flask
    samples = metric_samples(client)
    assert answers(samples) == {
        ("webhooks", "2xx", "stripe"): 2,
        ("webhooks", "4xx", "stripe"): 1,
        ("webhooks", "4xx", "unknown"): 1,
        ("healthz", "2xx", ""): 1,
        ("other", "4xx", ""): 1,
    }


def test_label_values_stay_bounded_whatever_the_urls(client: FlaskClient) -> None:
    for n in range(30):
        client.post(f"/webhooks/scanner-{n}", data=b"{}")
        client.get(f"/wp-admin-{n}.php")
    text = client.get("/metrics").get_data(as_text=True)
    assert "scanner" not in text and "wp-admin" not in text
    assert answers(metric_samples(client)) == {
        ("webhooks", "4xx", "unknown"): 30,
        ("other", "4xx", ""): 30,
        ("metrics", "2xx", ""): 1,
    }


def test_503s_are_counted_once_the_ledger_answers_again(settings: Settings) -> None:
    server = fakeredis.FakeServer()
    down_then_up = create_app(settings, redis_client=fakeredis.FakeRedis(server=server))
    client = down_then_up.test_client()
    server.connected = False  # Redis goes away
    response = post_stripe(client, stripe_event("evt_503"))
    assert response.status_code == 503
    assert metric_samples(client)[("crmhub_ledger_up", ())] == 0
    server.connected = True  # and comes back
    samples = metric_samples(client)
    assert answers(samples)[("webhooks", "5xx", "stripe")] == 1
    assert outcomes(samples, "stripe") == {"unavailable": 1}


def test_a_bug_is_a_counted_json_500_not_an_html_page(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("app.webhooks.build_events", broken)
    response = post_stripe(client, stripe_event("evt_bug"))
    assert response.status_code == 500
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "internal_error"

    hub = client.application.extensions["crmhub"]
    monkeypatch.setattr(hub.ledger, "ping", broken)  # a bug in a Flask route
    response = client.get("/readyz")
    assert response.status_code == 500
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "internal_error"

    samples = metric_samples(client)
    assert answers(samples)[("webhooks", "5xx", "stripe")] == 1
    assert answers(samples)[("readyz", "5xx", "")] == 1
    assert outcomes(samples, "stripe") == {"internal_error": 1}


def test_counts_reach_the_ledger_without_a_scrape(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    post_stripe(client, stripe_event("evt_bg"), secret="whsec_wrong")
    wait_until(
        lambda: fake_redis.hget(f"{PREFIX}:stats:answers", "webhooks|4xx|stripe"),
        timeout=10,
        message="the background flush",
    )
    assert fake_redis.hget(f"{PREFIX}:stats:webhooks", "stripe|unauthorized") == b"1"


def test_the_content_type_names_its_charset_once(client: FlaskClient) -> None:
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.startswith("text/plain; version=")
    assert content_type.count("charset") == 1


def test_pause_reasons_are_bounded_labels_not_free_text(client: FlaskClient) -> None:
    ledger = client.application.extensions["crmhub"].ledger
    ledger.pause(
        "crm", reason="customer asked on ticket #4711", by="ada@ops (cli)", now=time.time()
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert "4711" not in text
    paused = {
        dict(labels)["reason"]: value
        for (name, labels), value in metric_samples(client).items()
        if name == "crmhub_connection_paused"
    }
    assert paused == {"auth": 0, "manual": 1, "other": 0}

    ledger.resume("crm", now=time.time())
    ledger.pause("crm", reason="auth", by="crmhub", now=time.time(), detail="401 from crm")
    paused = {
        dict(labels)["reason"]: value
        for (name, labels), value in metric_samples(client).items()
        if name == "crmhub_connection_paused"
    }
    assert paused == {"auth": 1, "manual": 0, "other": 0}


def metrics_app(settings: Settings, **env: str) -> Flask:
    return create_app(
        Settings.from_env({**settings.environ, **env}), redis_client=fakeredis.FakeRedis()
    )


def test_a_metrics_token_protects_metrics(settings: Settings) -> None:
    client = metrics_app(settings, CRMHUB_METRICS_TOKEN="scrape-secret").test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "unauthorized"
    assert "CRMHUB_METRICS_TOKEN" in refused.get_json()["detail"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert allowed.status_code == 200
    assert "crmhub_ledger_up 1.0" in allowed.get_data(as_text=True)


def test_without_a_token_metrics_are_open(settings: Settings) -> None:
    assert settings.metrics_token is None
    assert metrics_app(settings).test_client().get("/metrics").status_code == 200


def test_the_request_read_timeout_setting(settings: Settings) -> None:
    assert settings.request_read_timeout_seconds == 10
    env = {**settings.environ, "CRMHUB_REQUEST_READ_TIMEOUT_SECONDS": "3"}
    assert Settings.from_env(env).request_read_timeout_seconds == 3
    with pytest.raises(ConfigError, match="CRMHUB_REQUEST_READ_TIMEOUT_SECONDS"):
        Settings.from_env({**env, "CRMHUB_REQUEST_READ_TIMEOUT_SECONDS": "ten"})


def test_a_targets_own_usage_report_is_exported(client: FlaskClient) -> None:
    """Salesforce's Sforce-Limit-Info, as a worker's connector last read it (ledger.memo)."""
    ledger = client.application.extensions["crmhub"].ledger
    assert not any(n == "crmhub_target_api_usage" for n, _ in metric_samples(client))
    ledger.memo.record_usage("crm", 10018, 100000)
    usage = {
        dict(labels)["kind"]: value
        for (name, labels), value in metric_samples(client).items()
        if name == "crmhub_target_api_usage" and dict(labels)["connection"] == "crm"
    }
    assert usage == {"used": 10018, "limit": 100000}


def test_alerting_series_latency_backlog_alerts_firing_and_refused_notices(
    settings: Settings, fake_redis: fakeredis.FakeRedis
) -> None:
    from core.ledger import open_ledger
    from core.vocabulary import AttemptOutcome

    app = create_app(settings, redis_client=fake_redis)
    client = app.test_client()
    ledger = open_ledger(settings, fake_redis)
    t0 = time.time()
    post_stripe(client, stripe_event("evt_l1", email="a@x.io"), now=t0)
    post_stripe(client, stripe_event("evt_l2", email="b@x.io"), now=t0)
    first = ledger.event(ledger.recent_events("stripe")[-1])  # each has two deliveries
    assert first is not None
    d = first["deliveries"][0]["id"]
    ledger.claim(d, token="t", now=t0 + 0.3, lease_seconds=60)
    ledger.finish(d, token="t", now=t0 + 0.3, outcome=AttemptOutcome.DELIVERED, attempt={})
    ledger.alerting.record_notification(
        {"id": "alt_1", "status": "firing"}, "pager", ok=False, at=t0, error="503",
        attempts=1, outcome="failed",
    )  # fmt: skip
    ledger.pause("crm", reason="auth", by="crmhub", now=t0)
    from core.alerting.service import evaluate_alerts

    evaluate_alerts(ledger, app.extensions["crmhub"].config, sinks=["pager"], now=t0 + 1)

    samples = metric_samples(client)
    conn = (("connection", "crm"),)
    # in the (0.25 s, 0.5 s] bucket: cumulative from there on
    assert samples[("crmhub_receipt_to_write_seconds_bucket", (*conn, ("le", "0.25")))] == 0
    assert samples[("crmhub_receipt_to_write_seconds_bucket", (*conn, ("le", "0.5")))] == 1
    assert samples[("crmhub_receipt_to_write_seconds_bucket", (*conn, ("le", "+Inf")))] == 1
    assert samples[("crmhub_receipt_to_write_seconds_count", conn)] == 1
    assert samples[("crmhub_backlog_age_seconds", conn)] > 0  # three still wait
    assert samples[("crmhub_alerts_firing", (("kind", "connection_paused"),))] == 1
    assert samples[("crmhub_alerts_firing", (("kind", "dead_letters"),))] == 0
    assert (
        samples[("crmhub_alert_notifications_total", (("outcome", "failed"), ("sink", "pager")))]
        == 1
    )
