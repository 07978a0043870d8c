"""The receiver's contract (docs/architecture.md, external contract), with fakeredis behind it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from conftest import text
from flask.testing import FlaskClient
from hubtest import (
    FORMS_SECRET,
    GITHUB_SECRET,
    HUBSPOT_SECRET,
    RECEIVER_CONFIG,
    RECEIVER_ENV,
    STRIPE_SECRET,
    signed,
    stripe_event,
)
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from app import create_app
from core.redis_client import connect
from core.settings import Settings

PREFIX = "crmhub-unit"


@pytest.fixture
def settings(write_config: Callable[..., Path]) -> Settings:
    path = write_config(RECEIVER_CONFIG)
    return Settings.from_env(
        {
            "CRMHUB_CONFIG": str(path),
            "CRMHUB_KEY_PREFIX": PREFIX,
            "CRMHUB_REDIS_URL": "redis://unused",
            **RECEIVER_ENV,
        }
    )


@pytest.fixture
def client(settings: Settings, fake_redis: fakeredis.FakeRedis) -> FlaskClient:
    return create_app(settings, redis_client=fake_redis).test_client()


def post_stripe(
    client: FlaskClient, event: dict, secret: str = STRIPE_SECRET, now: float | None = None
) -> TestResponse:
    body, headers = signed("stripe", event, secret, now=now)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def queue_length(r: redis.Redis) -> int:
    return int(r.llen(f"{PREFIX}:q:{PREFIX}.deliveries"))


def test_accepted_event_is_recorded_with_one_delivery_per_matching_mapping(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    response = post_stripe(client, stripe_event("evt_A"))
    assert response.status_code == 202
    payload = response.get_json()
    assert payload["deliveries"] == 2
    event = client.application.extensions["crmhub"].ledger.event(payload["event_id"])
    assert event["source"] == "stripe"
    assert event["external_id"] == "evt_A"
    assert event["type"] == "customer.created"
    assert event["state"] == "recorded"
    assert event["body"]["data"]["object"]["email"] == "ada@example.com"
    assert sorted(d["mapping"] for d in event["deliveries"]) == [
        "stripe-customer",
        "stripe-customer-audit",
    ]
    assert {d["state"] for d in event["deliveries"]} == {"pending"}
    assert queue_length(fake_redis) == 2


def test_queued_message_is_a_celery_task_carrying_only_the_delivery_id(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    post_stripe(client, stripe_event("evt_B", type_="customer.updated"))
    message = json.loads(text(fake_redis.rpop(f"{PREFIX}:q:{PREFIX}.deliveries")))
    assert message["headers"]["task"] == "crmhub.deliver"
    assert "body_encoding" not in message["properties"]  # kombu takes the body as is
    assert message["headers"]["id"] == message["properties"]["delivery_tag"]
    args, kwargs, _ = json.loads(message["body"])
    assert kwargs == {} and len(args) == 1 and args[0].startswith("dlv_")
    assert message["properties"]["delivery_info"]["routing_key"] == f"{PREFIX}.deliveries"


def test_repeat_of_a_recorded_event_is_200_duplicate_and_records_nothing(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    first = post_stripe(client, stripe_event("evt_C")).get_json()
    keys_before = set(fake_redis.keys())
    queued_before = queue_length(fake_redis)
    again = post_stripe(client, stripe_event("evt_C"))
    assert again.status_code == 200
    assert again.get_json() == {"event_id": first["event_id"], "duplicate": True}
    assert set(fake_redis.keys()) == keys_before
    assert queue_length(fake_redis) == queued_before


def test_event_matching_no_mapping_is_recorded_as_unrouted(client: FlaskClient) -> None:
    response = post_stripe(client, stripe_event("evt_D", type_="invoice.paid"))
    assert response.status_code == 202
    assert response.get_json()["deliveries"] == 0
    event = client.application.extensions["crmhub"].ledger.event(response.get_json()["event_id"])
    assert event["state"] == "unrouted"
    assert event["deliveries"] == []


def test_text_utf8_cannot_encode_is_recorded_never_a_500(client: FlaskClient) -> None:
    """JSON's "\\ud800" decodes to a lone surrogate, which Redis cannot store as text: the
    event is still recorded (its body as sent; ids, types and keys escaped), and a worker
    dead-letters the delivery naming the field."""
    ledger = client.application.extensions["crmhub"].ledger
    event = stripe_event("evt_\ud800", email="ada\udfff@example.com", name="Ada \ud800")
    event["created"] = "1700000000\udc00"
    response = post_stripe(client, event)
    assert response.status_code == 202, response.get_data()
    assert response.get_json()["deliveries"] == 2
    stored = ledger.event(response.get_json()["event_id"])
    assert stored["external_id"] == "evt_\\ud800"
    assert stored["body"]["data"]["object"]["name"] == "Ada \ud800"
    again = post_stripe(client, event)
    assert (again.status_code, again.get_json()) == (
        200,
        {"event_id": response.get_json()["event_id"], "duplicate": True},
    )

    unrouted = post_stripe(client, stripe_event("evt_E", type_="customer.\ud800"))
    assert unrouted.status_code == 202 and unrouted.get_json()["deliveries"] == 0
    assert ledger.event(unrouted.get_json()["event_id"])["type"] == "customer.\\ud800"

    batch = hubspot_batch(1, 2)
    batch[1]["objectId"] = "102\ud800"  # the match key of hubspot-contacts
    assert post_hubspot(client, batch).get_json()["deliveries"] == 2


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda h: h.pop("Stripe-Signature"), "missing"),
        (lambda h: h.__setitem__("Stripe-Signature", "t=1,v1=" + "0" * 64), "invalid"),
        (lambda h: h.__setitem__("Stripe-Signature", "garbage"), "invalid"),
    ],
)
def test_bad_signatures_are_401_saying_which(
    client: FlaskClient, mutate: Callable[[dict[str, str]], object], reason: str
) -> None:
    body, headers = signed("stripe", stripe_event(), STRIPE_SECRET)
    mutate(headers)
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["reason"] == reason
    assert STRIPE_SECRET not in response.get_data(as_text=True)


def test_wrong_secret_is_401_invalid_and_nothing_is_recorded(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    response = post_stripe(client, stripe_event("evt_E"), secret="whsec_attacker")
    assert response.status_code == 401
    assert response.get_json()["reason"] == "invalid"
    assert fake_redis.keys(f"{PREFIX}:evt:*") == []


def test_stale_timestamp_outside_five_minutes_is_401_stale(client: FlaskClient) -> None:
    response = post_stripe(client, stripe_event("evt_F"), now=time.time() - 301)
    assert response.status_code == 401
    assert response.get_json()["error"] == "signature_stale"


def test_rotated_secret_still_verifies(client: FlaskClient) -> None:
    response = post_stripe(client, stripe_event("evt_G"), secret="whsec_old_rotated_out")
    assert response.status_code == 202


def test_unknown_source_is_404(client: FlaskClient) -> None:
    response = client.post("/webhooks/nosuch", data=b"{}")
    assert response.status_code == 404
    assert "nosuch" in response.get_json()["detail"]


def test_malformed_json_is_400_with_position(client: FlaskClient) -> None:
    body, headers = signed("stripe", b'{"id": "evt_H", "type": ', STRIPE_SECRET)
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 400
    assert "line 1 column" in response.get_json()["detail"]


def test_body_over_the_source_limit_is_413(client: FlaskClient) -> None:
    body, headers = signed(
        "hmac",
        b'{"x": "' + b"a" * 3000 + b'"}',
        FORMS_SECRET,
        header="X-Signature",
        prefix="sha256=",
    )
    response = client.post("/webhooks/forms", data=body, headers=headers)
    assert response.status_code == 413
    assert "2048" in response.get_json()["detail"]


def test_ledger_unreachable_is_503_with_retry_after_never_2xx(settings: Settings) -> None:
    down = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    client = create_app(settings, redis_client=down).test_client()
    response = post_stripe(client, stripe_event("evt_I"))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    ready = client.get("/readyz")
    assert ready.status_code == 503


def test_without_an_event_id_the_body_hash_dedupes(client: FlaskClient) -> None:
    body, headers = signed(
        "hmac",
        {"form": "signup", "email": "x@example.com"},
        FORMS_SECRET,
        header="X-Signature",
        prefix="sha256=",
    )
    first = client.post("/webhooks/forms", data=body, headers=headers)
    again = client.post("/webhooks/forms", data=body, headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    event = client.application.extensions["crmhub"].ledger.event(first.get_json()["event_id"])
    assert event["external_id"].startswith("sha256:")


def test_event_id_and_type_from_headers(client: FlaskClient) -> None:
    body, headers = signed("github", {"action": "opened"}, GITHUB_SECRET)
    headers |= {"X-GitHub-Delivery": "72d3162e-cc78", "X-GitHub-Event": "issues"}
    response = client.post("/webhooks/github", data=body, headers=headers)
    assert response.status_code == 202
    event = client.application.extensions["crmhub"].ledger.event(response.get_json()["event_id"])
    assert (event["external_id"], event["type"]) == ("72d3162e-cc78", "issues")
    assert event["headers"]["X-Hub-Signature-256"] == "[redacted]"


def hubspot_batch(*event_ids: int) -> list[dict]:
    return [
        {
            "eventId": i,
            "subscriptionId": 7,
            "portalId": 62515,
            "occurredAt": 1_700_000_000_000,
            "subscriptionType": "contact.propertyChange",
            "objectId": 100 + i,
            "propertyName": "email",
            "propertyValue": f"c{i}@example.com",
        }
        for i in event_ids
    ]


def post_hubspot(client: FlaskClient, batch: list[Any]) -> TestResponse:
    # HubSpot signs the URL it called, which behind a proxy is the public one.
    body, headers = signed(
        "hubspot",
        batch,
        HUBSPOT_SECRET,
        url="https://hooks.example.com/webhooks/hubspot",
        version="v3",
    )
    return client.post(
        "/webhooks/hubspot", data=body, headers=headers, base_url="http://10.0.0.5:8000"
    )


def test_batch_source_records_each_element_as_its_own_event(client: FlaskClient) -> None:
    response = post_hubspot(client, hubspot_batch(1, 2, 3))
    assert response.status_code == 202
    payload = response.get_json()
    assert payload["accepted"] == 3 and payload["duplicates"] == 0
    assert payload["deliveries"] == 3
    ledger = client.application.extensions["crmhub"].ledger
    ids = {ledger.event(e["event_id"])["external_id"] for e in payload["events"]}
    assert ids == {"1", "2", "3"}


def test_batch_elements_are_deduped_on_their_own_ids(client: FlaskClient) -> None:
    post_hubspot(client, hubspot_batch(1, 2))
    partly = post_hubspot(client, hubspot_batch(2, 3))
    assert partly.status_code == 202
    assert [("duplicate" in e) for e in partly.get_json()["events"]] == [True, False]
    all_seen = post_hubspot(client, hubspot_batch(1, 3))
    assert all_seen.status_code == 200
    assert all_seen.get_json()["accepted"] == 0


def test_batch_source_rejects_a_non_array_body(client: FlaskClient) -> None:
    response = post_hubspot(client, {"eventId": 1})  # type: ignore[arg-type]
    assert response.status_code == 400
    assert "array" in response.get_json()["detail"]


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["redis"] == "ok"


def metric_samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def test_metrics_count_webhooks_queue_and_deliveries_hub_wide(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    post_stripe(client, stripe_event("evt_M1"))
    post_stripe(client, stripe_event("evt_M1"))  # a duplicate
    post_stripe(client, stripe_event("evt_M2"), secret="whsec_wrong")  # unauthorized
    samples = metric_samples(client)

    assert samples[("crmhub_ledger_up", ())] == 1
    webhooks = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "crmhub_webhooks_total" and dict(labels)["source"] == "stripe"
    }
    assert webhooks == {"accepted": 1, "duplicate": 1, "unauthorized": 1}
    # one accepted event, two mappings: two messages published, both still waiting
    assert samples[("crmhub_queue_messages_total", (("kind", "published"),))] == 2
    assert samples[("crmhub_queue_messages_total", (("kind", "withdrawn"),))] == 0
    assert samples[("crmhub_queue_depth", ())] == queue_length(fake_redis) == 2
    pending = sum(
        value
        for (name, labels), value in samples.items()
        if name == "crmhub_deliveries" and dict(labels)["state"] == "pending"
    )
    assert pending == 2


def test_metrics_report_the_ledger_down_instead_of_failing(settings: Settings) -> None:
    down = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    client = create_app(settings, redis_client=down).test_client()
    samples = metric_samples(client)
    assert samples[("crmhub_ledger_up", ())] == 0


def test_after_a_redis_outage_of_1000_refused_webhooks_the_next_is_recorded(
    settings: Settings,
) -> None:
    """Issue 9: failed calls used to leak connection-pool slots (~50 exhausted it), and every
    webhook after Redis came back was 503 "Too many connections" while /readyz said ready."""
    server = fakeredis.FakeServer()
    client = create_app(settings, redis_client=fakeredis.FakeRedis(server=server)).test_client()
    assert client.get("/readyz").status_code == 200
    assert post_stripe(client, stripe_event("evt_before")).status_code == 202

    server.connected = False  # Redis goes away
    for n in range(1000):
        assert post_stripe(client, stripe_event(f"evt_down_{n}")).status_code == 503
    assert client.get("/readyz").status_code == 503

    server.connected = True  # and comes back
    assert client.get("/readyz").status_code == 200
    response = post_stripe(client, stripe_event("evt_after"))
    assert response.status_code == 202, response.get_json()
    assert post_stripe(client, stripe_event("evt_down_7")).status_code == 202  # the retry
