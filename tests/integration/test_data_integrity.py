"""The seed's classic data failures, prevented end to end (real hub, real Redis, real target):
duplicates from differently formatted emails, a rep's manual edit overwritten, a stale event
overwriting a newer one, and a two-way sync echoing the hub's own write back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from hubtest import STRIPE_SECRET, signed, stripe_event
from processes import DemoTarget, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

FORMS_SECRET = "forms-secret"
CRM_HOOK_SECRET = "crm-hook-secret"

CONFIG = """
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
  signup-form:
    verify: {{scheme: hmac, secret_env: FORMS_SECRET, header: X-Signature, prefix: "sha256="}}
    event_id: submission_id
    occurred_at: submitted_at
  crm-changes:              # the CRM's own webhooks: two-way sync back to the warehouse
    verify: {{scheme: hmac, secret_env: CRM_HOOK_SECRET, header: X-Signature}}
    event_id: change_id
    echo: {{connection: crm, object: contacts, record: email, fields: changes,
            window_seconds: 300}}
connections:
  crm:
    connector: http
    base_url: {target}
  warehouse:
    connector: http
    base_url: {target}
mappings:
  stripe-customers:
    source: stripe
    connection: crm
    object: contacts
    match: {{field: email, from: data.object.email, normalize: email}}
    fields:
      email: {{from: data.object.email, transform: [email]}}
      name: data.object.name
      jobtitle: {{from: data.object.metadata.title, owner: target}}
  signups:
    source: signup-form
    connection: crm
    object: contacts
    match: {{field: email, from: email, normalize: email}}
    fields:
      email: {{from: email, transform: [email]}}
      lead_source: {{const: website}}
  crm-to-warehouse:
    source: crm-changes
    connection: warehouse
    object: people
    match: {{field: email, from: email, normalize: email}}
    fields:
      email: email
      name: changes.name
"""


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, real_redis_url: str
) -> Iterator[tuple[Hub, DemoTarget]]:
    tmp_path = tmp_path_factory.mktemp("integrity")
    target = DemoTarget()
    prefix = f"crmhub-integrity-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(target=target.url))
    hub = Hub(
        {
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": real_redis_url,
            "CRMHUB_KEY_PREFIX": prefix,
            "CRMHUB_VAR_DIR": str(tmp_path / "var"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "FORMS_SECRET": FORMS_SECRET,
            "CRM_HOOK_SECRET": CRM_HOOK_SECRET,
        },
        tmp_path,
    )
    try:
        yield hub, target
    finally:
        hub.stop()
        target.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


@pytest.fixture
def hub(running: tuple[Hub, DemoTarget]) -> tuple[Hub, DemoTarget]:
    """The module's hub, with an empty target (each test uses its own people)."""
    running[1].http.post("/_control/reset").raise_for_status()
    return running


def post(hub: Hub, source: str, body: dict, secret: str, **options: Any) -> dict:
    scheme = "stripe" if source == "stripe" else "hmac"
    raw, headers = signed(scheme, body, secret, **options)
    response = hub.http.post(f"/webhooks/{source}", content=raw, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def settled(hub: Hub, event_id: str) -> dict:
    def done() -> bool:
        shown = json.loads(hub.cli("events", "show", event_id, "--json").stdout)
        return all(d["state"] in ("delivered", "superseded", "dead") for d in shown["deliveries"])

    wait_until(done, timeout=30, message=f"{event_id} to settle")
    return dict(json.loads(hub.cli("events", "show", event_id, "--json").stdout))


def customer(event_id: str, created: int, email: str, name: str, title: str) -> dict:
    event = stripe_event(event_id, email=email, metadata={"title": title})
    event["created"] = created
    event["data"]["object"]["name"] = name
    return event


def test_one_person_from_two_sources_is_one_record(hub: tuple[Hub, DemoTarget]) -> None:
    h, target = hub
    first = post(
        h,
        "stripe",
        customer("evt_ada", 1000, "  Ada.Lovelace@Example.COM ", "Ada", "CTO"),
        STRIPE_SECRET,
    )
    second = post(
        h,
        "signup-form",
        {"submission_id": "s-1", "submitted_at": 1001, "email": "ada.lovelace@example.com   "},
        FORMS_SECRET,
        header="X-Signature",
        prefix="sha256=",
    )
    settled(h, first["event_id"])
    settled(h, second["event_id"])
    records = target.records("contacts")
    assert [r["key"] for r in records] == ["ada.lovelace@example.com"]
    assert records[0]["fields"] | {} == {
        "email": "ada.lovelace@example.com",
        "name": "Ada",
        "jobtitle": "CTO",
        "lead_source": "website",
    }


def test_a_reps_manual_edit_of_a_target_owned_field_survives(hub: tuple[Hub, DemoTarget]) -> None:
    h, target = hub
    settled(
        h,
        post(
            h,
            "stripe",
            customer("evt_grace_1", 1000, "grace@example.com", "Grace", "Engineer"),
            STRIPE_SECRET,
        )["event_id"],
    )
    # a rep edits the job title in the CRM by hand
    target.http.put(
        "/contacts/grace%40example.com", json={"jobtitle": "Rear Admiral"}
    ).raise_for_status()
    later = post(
        h,
        "stripe",
        customer("evt_grace_2", 2000, "grace@example.com", "Grace Hopper", "Engineer"),
        STRIPE_SECRET,
    )
    shown = settled(h, later["event_id"])
    (record,) = target.records("contacts")
    assert record["fields"]["jobtitle"] == "Rear Admiral"  # not overwritten
    assert record["fields"]["name"] == "Grace Hopper"  # source-owned: updated
    delivery_id = shown["deliveries"][0]["id"]
    delivery = json.loads(h.cli("dlq", "show", delivery_id, "--json").stdout)
    assert delivery["attempt_history"][-1]["skipped_fields"] == ["jobtitle"]


def test_an_older_event_arriving_late_is_superseded(hub: tuple[Hub, DemoTarget]) -> None:
    h, target = hub
    newer = post(
        h, "stripe", customer("evt_new", 2000, "alan@example.com", "Alan (new)", "x"), STRIPE_SECRET
    )
    assert settled(h, newer["event_id"])["deliveries"][0]["state"] == "delivered"
    older = post(
        h, "stripe", customer("evt_old", 1500, "ALAN@example.com", "Alan (old)", "x"), STRIPE_SECRET
    )
    assert settled(h, older["event_id"])["deliveries"][0]["state"] == "superseded"
    (record,) = target.records("contacts")
    assert record["fields"]["name"] == "Alan (new)"
    assert [e["body"]["name"] for e in target.log() if e["method"] == "PUT"] == ["Alan (new)"]


def test_the_crms_echo_of_the_hubs_own_write_is_not_synced_back(
    hub: tuple[Hub, DemoTarget],
) -> None:
    h, target = hub
    settled(
        h,
        post(
            h,
            "stripe",
            customer("evt_edsger", 1000, "Edsger@example.com", "Edsger", "x"),
            STRIPE_SECRET,
        )["event_id"],
    )
    # the CRM announces the change the hub just made: an echo, routed nowhere
    echo = post(
        h,
        "crm-changes",
        {"change_id": "c-1", "email": "edsger@example.com", "changes": {"name": "Edsger"}},
        CRM_HOOK_SECRET,
        header="X-Signature",
    )
    assert echo == {"event_id": echo["event_id"], "deliveries": 0, "echo": True}
    assert json.loads(h.cli("events", "show", echo["event_id"], "--json").stdout)["state"] == "echo"
    # a rep's own change in the CRM is a real change: it syncs to the warehouse
    real = post(
        h,
        "crm-changes",
        {"change_id": "c-2", "email": "edsger@example.com", "changes": {"name": "E. W. Dijkstra"}},
        CRM_HOOK_SECRET,
        header="X-Signature",
    )
    assert real["deliveries"] == 1
    settled(h, real["event_id"])
    wait_until(lambda: target.records("people"), timeout=10, message="the warehouse write")
    assert target.records("people")[0]["fields"]["name"] == "E. W. Dijkstra"


def test_a_value_utf8_cannot_encode_is_recorded_then_dead_at_once_naming_the_field(
    hub: tuple[Hub, DemoTarget],
) -> None:
    """JSON's "\\ud800" (a lone surrogate) through the real receiver, Redis and worker: the
    events are recorded (never a 500), each delivery is dead on its first attempt as a
    mapping error naming the field, and a good event beside them is delivered."""
    h, target = hub
    poison = post(
        h,
        "stripe",
        customer("evt_poison_\ud800", 1000, "Poison@example.com", "Ada \ud800", "x"),
        STRIPE_SECRET,
    )
    echo = post(
        h,
        "crm-changes",
        {
            "change_id": "c-\ud800",
            "email": "grace\udfff@example.com",
            "changes": {"name": "G\ud800"},
        },
        CRM_HOOK_SECRET,
        header="X-Signature",
    )
    good = post(
        h, "stripe", customer("evt_poison_ok", 1000, "fine@example.com", "Fine", "x"), STRIPE_SECRET
    )
    for accepted, fields in ((poison, ["name"]), (echo, ["email", "name"])):
        shown = settled(h, accepted["event_id"])
        [delivery] = shown["deliveries"]
        assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
        dead = json.loads(h.cli("dlq", "show", delivery["id"], "--json").stdout)["dead"]
        assert dead["category"] == "mapping"
        assert [p["field"] for p in dead["record"]["problems"]] == fields
        assert f"{fields[0]}: cannot be encoded as UTF-8 text: \\u" in dead["error"]
    assert settled(h, good["event_id"])["deliveries"][0]["state"] == "delivered"
    assert [r["key"] for r in target.records("contacts")] == ["fine@example.com"]
    assert target.records("people") == []
