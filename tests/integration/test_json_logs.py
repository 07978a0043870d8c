"""CRMHUB_LOG_FORMAT=json (issue 11): the Procfile's web, worker and beat each write one JSON
object per line; a line about a delivery carries its ids and the connection; and no secret or
signature appears anywhere in the output of a whole run (accepted and refused webhooks, a
delivery with a bearer token, dead letters, a pause, alerts to a webhook whose URL is a
secret)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import AlertSink, DemoTarget, Part, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

CRM_TOKEN = f"pat-{uuid.uuid4().hex}"

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
    auth: {{type: bearer, token_env: CRM_TOKEN}}
mappings:
  customers:
    source: stripe
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields: {{email: data.object.email, name: data.object.name}}
"""


def test_every_line_is_json_with_ids_and_no_secret_in_a_whole_run(
    tmp_path: Path, real_redis_url: str
) -> None:
    target = DemoTarget("--token", CRM_TOKEN)
    sink = AlertSink()
    secret_path = uuid.uuid4().hex  # a webhook URL is a secret (Slack's are)
    prefix = f"crmhub-json-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(target=target.url))
    port = free_port()
    env = {
        **os.environ,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path),
        "CRMHUB_PORT": str(port),
        "CRMHUB_LOG_FORMAT": "json",
        "CRMHUB_ALERT_INTERVAL_SECONDS": "1",
        "CRMHUB_ALERT_WEBHOOK_URL": f"{sink.base}/services/{secret_path}",
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CRM_TOKEN": CRM_TOKEN,
        "CRMHUB_WEB_WORKERS": "1",
    }
    parts = {name: Part(name, env, tmp_path) for name in ("web", "worker", "beat")}
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    signatures: list[str] = []

    def send(event: dict, secret: str = STRIPE_SECRET) -> int:
        body, headers = signed("stripe", event, secret)
        signatures.append(headers["Stripe-Signature"].split("v1=")[1])
        return http.post("/webhooks/stripe", content=body, headers=headers).status_code

    try:
        wait_until(lambda: _ready(http), timeout=30, message="the receiver")
        assert send(stripe_event("evt_ok", email="ok@example.com")) == 202
        wait_until(lambda: target.records("contacts"), timeout=30, message="a write")
        assert send(stripe_event("evt_forged"), secret="whsec_forged_secret_xyz") == 401
        target.fault(mode="validation")
        assert send(stripe_event("evt_dead", email="dead@example.com")) == 202
        wait_until(
            lambda: any(e["status"] == 400 for e in target.log()), timeout=30, message="a 400"
        )
        target.clear_faults()
        target.fault(mode="unauthorized")
        assert send(stripe_event("evt_pause", email="pause@example.com")) == 202
        wait_until(
            lambda: {a["kind"] for a in sink.received} >= {"connection_paused", "dead_letters"},
            timeout=30,
            message="the alerts",
        )
        time.sleep(1)  # a last tick of every part
    finally:
        for part in parts.values():
            part.stop()
        target.stop()
        sink.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)

    lines = {name: _json_lines(part.output(), name) for name, part in parts.items()}
    assert {line["process"] for line in lines["web"]} == {"web"}
    assert {line["process"] for line in lines["worker"]} == {"worker"}
    assert {line["process"] for line in lines["beat"]} == {"beat"}
    refused = [line for line in lines["web"] if "rejected webhook" in line["message"]]
    assert refused and refused[0]["source"] == "stripe" and refused[0]["level"] == "warning"
    paused = [line for line in lines["worker"] if "paused connection" in line["message"]]
    assert paused and paused[0]["connection"] == "crm"
    alerts = [line for line in lines["worker"] if line.get("alert_id")]
    assert {line["connection"] for line in alerts} == {"crm"}

    everything = "\n".join(part.output() for part in parts.values())
    for secret in (STRIPE_SECRET, "whsec_forged_secret_xyz", CRM_TOKEN, secret_path, *signatures):
        assert secret not in everything


def _json_lines(output: str, name: str) -> list[dict]:
    lines = []
    for number, line in enumerate(output.splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{name} line {number} is not JSON: {line!r}") from None
    assert lines, f"{name} wrote nothing"
    return lines


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
