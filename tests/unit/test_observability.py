"""Sentry is initialised wherever SENTRY_DSN is set, and what it sends is scrubbed.

The SDK is real and so is its HTTP: errors go to a collector on loopback that speaks Sentry's
envelope endpoint (POST /api/<project>/envelope/), as a self-hosted Sentry would receive them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import sentry_sdk
from conftest import make_settings
from processes import SentryCollector

from core.observability import init_sentry
from core.settings import Settings


@pytest.fixture
def collector() -> Iterator[SentryCollector]:
    sink = SentryCollector()
    try:
        yield sink
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)  # later tests run without Sentry
        sink.server.shutdown()


def test_no_dsn_initialises_nothing() -> None:
    assert init_sentry(Settings.from_env({}), "web") is False
    assert not sentry_sdk.get_client().is_active()


def test_a_receiver_error_reaches_sentry_without_the_senders_secrets(
    collector: SentryCollector, write_config, key_prefix: str
) -> None:
    from app import create_app

    path = write_config("""
        sources:
          forms: {verify: {scheme: none}, allow_unsigned: true}
        connections: {}
        mappings: {}
    """)
    app = create_app(
        make_settings(path, key_prefix, SENTRY_DSN=collector.dsn),
        redis_client=fakeredis.FakeRedis(),
    )

    def broken() -> str:
        raise RuntimeError("a bug in a view")

    app.add_url_rule("/broken", view_func=broken, methods=["POST"])
    # made at run time: Sentry attaches this file's source lines to the traceback
    signature, token, query, body = (uuid.uuid4().hex for _ in range(4))
    app.test_client().post(
        f"/broken?token={query}",
        data=json.dumps({"ssn": body}),
        headers={
            "Stripe-Signature": f"t=1,v1={signature}",
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    sentry_sdk.flush(timeout=5)

    [event] = collector.items
    assert event["exception"]["values"][0]["value"] == "a bug in a view"
    assert event["tags"]["crmhub.process"] == "web"
    request = event["request"]
    assert request["headers"]["Content-Type"] == "application/json"
    assert set(request["headers"]) <= {"Content-Type", "Content-Length", "User-Agent"}
    sent = json.dumps(event)
    for secret in (signature, token, query, body):
        assert secret not in sent


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_the_worker_and_beat_initialise_sentry_at_start(
    process: str,
    collector: SentryCollector,
    tmp_path: Path,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.signals import beat_init, celeryd_init

    monkeypatch.setenv("CRMHUB_REDIS_URL", "redis://127.0.0.1:9/0")  # read at import only

    from workers.celery_app import app

    previous = app.conf.crmhub_settings
    # a valid configuration: the worker and beat check it at start too
    path = write_config("{sources: {}, connections: {}, mappings: {}}")
    app.conf.crmhub_settings = Settings.from_env(
        {
            "SENTRY_DSN": collector.dsn,
            "CRMHUB_CONFIG": str(path),
            "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        }
    )
    try:
        (celeryd_init if process == "worker" else beat_init).send(sender=None)
    finally:
        app.conf.crmhub_settings = previous
    sentry_sdk.capture_message("from a task")
    sentry_sdk.flush(timeout=5)
    [event] = collector.items
    assert event["tags"]["crmhub.process"] == process


def test_an_alert_reaches_sentry_with_secrets_and_configured_fields_scrubbed(
    collector: SentryCollector,
) -> None:
    from core.observability import report_alert

    settings = Settings.from_env(
        {"SENTRY_DSN": collector.dsn, "CRMHUB_SENTRY_SCRUB_FIELDS": "ssn, customer_ref"}
    )
    assert settings.sentry_scrub_fields == {"ssn", "customer_ref"}
    assert init_sentry(settings, "worker")
    ssn, ref, token = (uuid.uuid4().hex for _ in range(3))
    report_alert(
        {
            "id": "alt_1",
            "kind": "dead_letters",
            "status": "firing",
            "severity": "error",
            "connection": "crm",
            "summary": "3 dead letters for connection 'crm' (rejected_by_target)",
            "dedup_key": "dead_letters:crm:rejected_by_target",
            "details": {
                "top_error": "email ada.lovelace@example.com was refused",
                "ssn": ssn,
                "record": {"customer_ref": ref, "access_token": token, "email": "a@b.co"},
            },
        }
    )
    report_alert({"status": "resolved", "summary": "not reported"})  # only firing ones
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("refresh_token", token)
        sentry_sdk.capture_exception(ValueError("bad address grace@example.com"))
    sentry_sdk.flush(timeout=5)

    alert, error = collector.items
    assert alert["message"].startswith("3 dead letters") and alert["level"] == "error"
    assert alert["tags"]["alert.kind"] == "dead_letters"
    assert alert["fingerprint"] == ["crmhub-alert", "dead_letters:crm:rejected_by_target"]
    details = alert["contexts"]["alert"]["details"]
    assert details["ssn"] == "[Filtered]" and details["record"]["customer_ref"] == "[Filtered]"
    assert details["record"]["access_token"] == "[Filtered]"
    assert details["record"]["email"] == "[Filtered]"
    assert details["top_error"] == "email [Filtered] was refused"
    assert error["exception"]["values"][0]["value"] == "bad address [Filtered]"
    sent = json.dumps(collector.items)
    for secret in (ssn, ref, token, "ada.lovelace@example.com", "grace@example.com"):
        assert secret not in sent
