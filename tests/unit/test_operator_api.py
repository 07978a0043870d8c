"""The operator API (/api/v1) in-process on fakeredis: every endpoint, role and error, the
filters and cursors, bulk operations, edit-and-replay, the action log, and the OpenAPI
document against the routes the app has."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from operator_hub import ADMIN_TOKEN, OPS_TOKEN, VIEWER_TOKEN, OperatorHub

from app.api.views import openapi_document
from core import dead_letters
from core.ledger import NewEvent
from core.vocabulary import OperatorAction

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
ADA = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture
def hub(tmp_path: Path, key_prefix: str) -> OperatorHub:
    return OperatorHub.build(tmp_path, key_prefix)


@pytest.fixture
def api(hub: OperatorHub) -> FlaskClient:
    return hub.app().test_client()


def get(api: FlaskClient, path: str, headers: dict[str, str] = ADMIN, **query: Any) -> Any:
    response = api.get(f"/api/v1{path}", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def post(
    api: FlaskClient,
    path: str,
    body: Any = None,
    headers: dict[str, str] = ADMIN,
    status: int = 200,
) -> Any:
    response = api.post(f"/api/v1{path}", headers=headers, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


#: one concrete request per documented operation (path parameters filled in)
def documented_requests() -> list[tuple[str, str]]:
    out = []
    for path, item in openapi_document()["paths"].items():
        concrete = (
            path.replace("{name}", "crm")
            .replace("{event_id}", "evt_x")
            .replace("{delivery_id}", "dlv_x")
            .replace("{operation_id}", "op_x")
        )
        out += [(method.upper(), concrete) for method in item if method in ("get", "post")]
    return out


# access ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), documented_requests())
def test_without_any_token_configured_every_call_is_401_saying_how_to_enable(
    tmp_path: Path, key_prefix: str, method: str, path: str
) -> None:
    hub = OperatorHub.build(
        tmp_path, key_prefix, CRMHUB_OPERATOR_TOKEN="", CRMHUB_OPERATOR_TOKENS=""
    )
    response = hub.app().test_client().open(f"/api/v1{path}", method=method, headers=ADMIN, json={})
    assert response.status_code == 401
    assert "CRMHUB_OPERATOR_TOKEN" in response.get_json()["detail"]


@pytest.mark.parametrize(("method", "path"), documented_requests())
def test_a_missing_or_wrong_token_is_401(api: FlaskClient, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope-nope-nope-nope"},
        {"Authorization": ADMIN_TOKEN},
    ):
        response = api.open(f"/api/v1{path}", method=method, headers=headers, json={})
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert ADMIN_TOKEN not in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path"), [r for r in documented_requests() if r[0] == "POST"])
def test_a_read_only_token_reads_but_every_action_is_403(
    api: FlaskClient, hub: OperatorHub, method: str, path: str
) -> None:
    dead = hub.dead()
    response = api.post(
        f"/api/v1{path}", headers=VIEWER, json={"ids": [dead], "reason": "x", "fields": {"a": 1}}
    )
    assert response.status_code == 403
    assert "read_only" in response.get_json()["detail"]
    assert hub.state(dead) == "dead"
    assert not hub.ledger.pause_info("crm")
    assert get(api, "/dead-letters", VIEWER)["total"] == 1


# connections ---------------------------------------------------------------------------------
def test_connections_as_status_json_and_one_by_name(api: FlaskClient, hub: OperatorHub) -> None:
    hub.dead()
    rows = get(api, "/connections")["connections"]
    assert [r["name"] for r in rows] == ["crm", "erp"]
    crm = get(api, "/connections/crm")
    assert crm["counts"]["dead"] == 1 and crm["counts"]["pending"] == 0
    assert crm["paused"] is False and crm["circuit"] == "closed"
    missing = api.get("/api/v1/connections/nope", headers=ADMIN)
    assert missing.status_code == 404
    assert "crm, erp" in missing.get_json()["detail"]


def test_pause_and_resume_are_attributed_to_the_tokens_name_and_logged(
    api: FlaskClient, hub: OperatorHub
) -> None:
    assert post(api, "/connections/crm/pause", {"reason": "crm maintenance"}, ADA) == {
        "connection": "crm",
        "paused": True,
        "changed": True,
    }
    crm = get(api, "/connections/crm")
    assert crm["paused"] and crm["pause_reason"] == "crm maintenance" and crm["paused_by"] == "ada"
    held = hub.receive()["crm"]
    assert hub.state(held) == "held"
    assert post(api, "/connections/crm/pause", {}, ADA)["changed"] is False
    assert post(api, "/connections/crm/resume", None, ADMIN)["released"] == 1
    assert hub.state(held) == "pending"
    log = get(api, "/actions")["actions"]
    assert [(a["action"], a["by"], a["via"], a["connection"]) for a in log] == [
        ("resume", "admin", "api", "crm"),
        ("pause", "ada", "api", "crm"),
    ]
    assert log[1]["reason"] == "crm maintenance"
    assert post(api, "/connections/crm/pause", [1], status=400)["error"] == "bad_request"
    assert api.post("/api/v1/connections/nope/resume", headers=ADMIN).status_code == 404


# events --------------------------------------------------------------------------------------
def test_events_filter_search_and_page_with_a_cursor(api: FlaskClient, hub: OperatorHub) -> None:
    t0 = time.time() - 1000
    for i in range(7):
        hub.receive(email=f"  Person{i}@Example.com ", now=t0 + i)
    hub.receive(type_="customer.created", now=t0 + 10)
    ids = [e["id"] for e in get(api, "/events", limit=3)["events"]]
    assert len(ids) == 3
    seen, cursor = [], None
    while True:
        page = get(api, "/events", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8 == len(set(seen)) and seen[:3] == ids
    created = get(api, "/events", type="customer.created")["events"]
    assert [e["type"] for e in created] == ["customer.created"]
    # q: an email in the body (any case and spacing), a sender's id, an event id
    [found] = get(api, "/events", q="person3@example.COM")["events"]
    assert found["external_id"] == "evt_stripe_4"
    assert get(api, "/events", q="evt_stripe_4")["events"] == [found]
    assert get(api, "/events", q=found["id"])["events"] == [found]
    assert get(api, "/events", q="nobody@example.com")["events"] == []
    # times, states
    recent = get(api, "/events", since=str(t0 + 5), until=str(t0 + 6))["events"]
    assert len(recent) == 2
    hub.kill(hub.receive()["crm"])
    assert len(get(api, "/events", state="dead")["events"]) == 1
    assert len(get(api, "/events", state="recorded", limit=500)["events"]) == 9
    for bad in (
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "garbage"},
        {"source": "nope"},
        {"state": "nope"},
        {"since": "yesterday"},
    ):
        response = api.get("/api/v1/events", headers=ADMIN, query_string=bad)
        assert response.status_code == 400, bad
        assert next(iter(bad)) in response.get_json()["detail"]


def test_an_event_shows_its_deliveries_and_every_attempt_and_no_secret(
    api: FlaskClient, hub: OperatorHub
) -> None:
    now = time.time()
    # an event stored with a signature header in clear (from before its scheme redacted it)
    event = NewEvent(
        id="evt_0190a1b2c3d4e5f6a7b8c9d0",
        source="stripe",
        type="customer.updated",
        external_id="evt_signed",
        received_at=now,
        occurred_at=None,
        headers={
            "Stripe-Signature": "t=1,v1=deadbeefSIGNATURE",
            "X-Hub-Signature-256": "sha256=cafebabeSIGNATURE",
            "Authorization": "Bearer tok-SECRET",
            "User-Agent": "Stripe/1.0",
        },
        body=json.dumps({"type": "customer.updated", "data": {"object": {"email": "a@b.co"}}}),
    )
    hub.ledger.accept([event], now)
    shown = get(api, f"/events/{event.id}")
    assert shown["headers"]["User-Agent"] == "Stripe/1.0"
    assert {
        shown["headers"][h] for h in ("Stripe-Signature", "X-Hub-Signature-256", "Authorization")
    } == {"[redacted]"}
    ids = hub.receive()
    hub.kill(ids["crm"])
    detail = api.get(f"/api/v1/events/{ids['event']}", headers=ADMIN)
    text = detail.get_data(as_text=True)
    assert "at-SECRET-123" not in text and "SIGNATURE" not in text
    crm = next(d for d in detail.get_json()["deliveries"] if d["connection"] == "crm")
    [attempt] = crm["attempt_history"]
    assert attempt["outcome"] == "dead" and attempt["status"] == 422
    assert attempt["duration_ms"] == 12.5 and attempt["at"].endswith("Z")
    assert "[redacted]" in attempt["excerpt"]
    assert api.get("/api/v1/events/evt_nope", headers=ADMIN).status_code == 404


# dead letters ----------------------------------------------------------------------------------
def test_dead_letters_filter_by_connection_mapping_category_since_and_q(
    api: FlaskClient, hub: OperatorHub
) -> None:
    old = time.time() - 7200
    a = hub.dead("crm", now=old)
    b = hub.dead("crm", category="mapping", email="grace@example.com")
    c = hub.dead("erp")

    def ids(**query: Any) -> list[str]:
        return [r["id"] for r in get(api, "/dead-letters", **query)["dead_letters"]]

    assert ids() == [c, b, a]
    assert get(api, "/dead-letters")["total"] == 3
    assert ids(connection="crm") == [b, a]
    assert ids(mapping="customer-to-account") == [c]
    assert ids(category="mapping") == [b]
    assert ids(since="1h") == [c, b]
    assert ids(connection="crm", category="rejected_by_target") == [a]
    assert get(api, "/dead-letters", connection="crm", category="mapping")["total"] == 1
    assert ids(q="GRACE@example.com") == [b]
    assert ids(q=b) == [b]
    row = get(api, "/dead-letters", q=b)["dead_letters"][0]
    assert row["category"] == "mapping" and row["connection"] == "crm" and row["attempts"] == 1
    for bad in (
        {"category": "nope"},
        {"connection": "nope"},
        {"mapping": "nope"},
        {"limit": "501"},
    ):
        assert api.get("/api/v1/dead-letters", headers=ADMIN, query_string=bad).status_code == 400


def test_dead_letters_page_through_ties_without_losing_or_repeating_one(
    api: FlaskClient, hub: OperatorHub
) -> None:
    now = time.time()
    made = {hub.dead("crm", now=now) for _ in range(25)}  # the same dead_at: ties all along
    seen: list[str] = []
    cursor = None
    while True:
        page = get(api, "/dead-letters", limit=7, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 25
        seen += [r["id"] for r in page["dead_letters"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 25


def test_a_dead_letter_shows_as_dlq_show_json(api: FlaskClient, hub: OperatorHub) -> None:
    d = hub.dead()
    shown = get(api, f"/dead-letters/{d}")
    assert shown["id"] == d and shown["state"] == "dead"
    assert shown["dead"]["category"] == "rejected_by_target"
    assert shown["event"]["body"]["data"]["object"]["id"].startswith("cus_")
    assert len(shown["attempt_history"]) == 1
    assert api.get("/api/v1/dead-letters/dlv_nope", headers=ADMIN).status_code == 404


def test_replay_by_ids_dry_run_first_then_for_real(api: FlaskClient, hub: OperatorHub) -> None:
    a, b = hub.dead(), hub.dead()
    alive = hub.receive()["crm"]
    dry = post(api, "/dead-letters/replay", {"ids": [a, b, alive], "dry_run": True})
    assert dry["would_replay"] == 2 and {r["id"] for r in dry["sample"]} == {a, b}
    assert hub.state(a) == "dead"
    done = post(api, "/dead-letters/replay", {"ids": [a, b, alive]}, ADA)
    assert done["replayed"] == 2 and done["not_done"] == {alive: "pending"}
    assert hub.state(a) == hub.state(b) == "pending"
    op = get(api, f"/operations/{done['operation']}")
    assert op["state"] == "done" and op["applied"] == 2 and op["by"] == "ada" and op["via"] == "api"
    [entry] = get(api, "/actions")["actions"]
    assert entry["action"] == "replay" and sorted(entry["ids"]) == sorted([a, b])
    assert entry["by"] == "ada" and entry["via"] == "api" and entry["count"] == 2
    action = hub.ledger.delivery(a, history=True)["actions"][-1]  # type: ignore[index]
    assert action["by"] == "ada" and action["via"] == "api"


def test_replay_and_discard_by_filter(api: FlaskClient, hub: OperatorHub) -> None:
    crm = [hub.dead("crm") for _ in range(3)]
    erp = hub.dead("erp")
    flt = {"filter": {"connection": "crm"}}
    assert post(api, "/dead-letters/replay", flt | {"dry_run": True})["would_replay"] == 3
    assert post(api, "/dead-letters/discard", flt | {"reason": "test data"})["discarded"] == 3
    assert {hub.state(d) for d in crm} == {"discarded"} and hub.state(erp) == "dead"
    action = hub.ledger.delivery(crm[0], history=True)["actions"][-1]  # type: ignore[index]
    assert action["reason"] == "test data"
    assert get(api, "/dead-letters")["total"] == 1


@pytest.mark.parametrize(
    ("path", "body", "word"),
    [
        ("/dead-letters/replay", {}, "ids"),
        ("/dead-letters/replay", {"ids": ["dlv_x"], "filter": {}}, "ids"),
        ("/dead-letters/replay", {"ids": "dlv_x"}, "ids"),
        ("/dead-letters/replay", {"ids": []}, "ids"),
        ("/dead-letters/replay", {"filter": {"colour": "red"}}, "colour"),
        ("/dead-letters/replay", {"filter": {"category": "nope"}}, "category"),
        ("/dead-letters/replay", {"ids": ["dlv_x"], "dry_run": "yes"}, "dry_run"),
        ("/dead-letters/discard", {"ids": ["dlv_x"]}, "reason"),
        ("/dead-letters/discard", {"ids": ["dlv_x"], "reason": "  "}, "reason"),
        ("/dead-letters/dlv_x/edit", {}, "fields"),
        ("/dead-letters/dlv_x/edit", {"fields": {}}, "fields"),
        ("/dead-letters/dlv_x/edit", {"event_body": [1]}, "event_body"),
    ],
)
def test_bad_bulk_and_edit_bodies_are_400_saying_what(
    api: FlaskClient, path: str, body: dict[str, Any], word: str
) -> None:
    answer = post(api, path, body, status=400)
    assert answer["error"] == "bad_request" and word in answer["detail"]


def test_a_body_that_is_not_a_json_object_is_400(api: FlaskClient) -> None:
    response = api.post("/api/v1/dead-letters/replay", headers=ADMIN, data="not json")
    assert response.status_code == 400
    assert "JSON object" in response.get_json()["detail"]


def test_more_than_500_run_in_the_background_and_the_idempotency_key_repeats_it(
    api: FlaskClient, hub: OperatorHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "BACKGROUND_OVER", 5)
    monkeypatch.setattr(dead_letters, "CHUNK", 4)
    made = [hub.dead() for _ in range(9)]
    headers = ADMIN | {"Idempotency-Key": "drain-2026-12-03"}
    response = api.post(
        "/api/v1/dead-letters/replay", headers=headers, json={"filter": {"connection": "crm"}}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    started = response.get_json()
    assert started["total"] == 9 and response.headers["Location"].endswith(started["operation"])
    deadline = time.monotonic() + 10
    while get(api, f"/operations/{started['operation']}")["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    op = get(api, f"/operations/{started['operation']}")
    assert op["done"] == op["total"] == op["applied"] == 9
    assert {hub.state(d) for d in made} == {"pending"}
    again = api.post(
        "/api/v1/dead-letters/replay", headers=headers, json={"filter": {"connection": "crm"}}
    )
    assert again.status_code == 202 and again.get_json()["operation"] == started["operation"]
    assert api.get("/api/v1/operations/op_nope", headers=ADMIN).status_code == 404


def test_overlapping_bulk_replays_never_replay_a_delivery_twice(hub: OperatorHub) -> None:
    made = [hub.dead() for _ in range(6)]
    rows = dead_letters.chosen(hub.ledger, made, None)
    first = dead_letters.start(
        hub.ledger, hub.config, OperatorAction.REPLAY, rows, by="a", via="api"
    )
    # the second request chose the same rows before the first ran; by the time it runs, each
    # was replayed and (for three of them) died again: none is replayed a second time
    for d in made[:3]:
        hub.kill(d)
    second = dead_letters.start(
        hub.ledger, hub.config, OperatorAction.REPLAY, rows, by="b", via="api"
    )
    assert first["applied"] == 6 and second["applied"] == 0
    assert set(second["results"].values()) == {"changed", "pending"}


def test_a_runner_that_stopped_is_taken_over_where_it_stood(hub: OperatorHub) -> None:
    made = [hub.dead() for _ in range(5)]
    rows = dead_letters.chosen(hub.ledger, made, None)
    op_id, _ = hub.ledger.bulk.create(
        "op_crashed",
        items=[(r["id"], r["dead_at"]) for r in rows],
        fields={"action": "replay", "by": "ada", "via": "api"},
        now=time.time(),
    )
    # a web process took it, replayed the first two, and died holding a lease
    assert hub.ledger.bulk.take(op_id, "dead-process", time.time(), 30)
    from core import operations

    operations.replay(
        hub.ledger,
        hub.config,
        made[:2],
        by="ada",
        now=time.time(),
        via="api",
        operation=op_id,
        dead_at={r["id"]: r["dead_at"] for r in rows},
    )
    assert dead_letters.resume_unfinished(hub.ledger, hub.config, owner="other") == []  # leased
    later = time.time() + 31
    assert dead_letters.resume_unfinished(
        hub.ledger, hub.config, owner="other", clock=lambda: later
    ) == [op_id]
    op = dead_letters.operation(hub.ledger, op_id)
    assert op is not None and op["state"] == "done" and op["applied"] == 5
    assert {hub.state(d) for d in made} == {"pending"}


# edit-and-replay ------------------------------------------------------------------------------
def test_edit_a_field_then_replay_keeping_the_original(api: FlaskClient, hub: OperatorHub) -> None:
    d = hub.dead(email="ada@example", category="mapping")
    original = hub.ledger.raw_delivery(d)["event_id"]
    before = hub.ledger.raw_event(original)
    preview = post(
        api, f"/dead-letters/{d}/edit", {"fields": {"email": " Ada@Example.com"}, "dry_run": True}
    )
    assert preview["would_replay"] is True
    assert preview["event_body"]["data"]["object"]["email"] == " Ada@Example.com"
    email = next(f for f in preview["dry_run"]["fields"] if f["name"] == "email")
    assert email["value"] == "ada@example.com"  # the mapping's transform ran on the edit
    assert hub.state(d) == "dead"
    done = post(api, f"/dead-letters/{d}/edit", {"fields": {"email": " Ada@Example.com"}}, ADA)
    assert done["result"] == "ok" and done["event_id"] != original
    assert hub.state(d) == "pending"
    assert hub.ledger.raw_event(original) == before  # the original is kept as it was
    edited = get(api, f"/events/{done['event_id']}")
    assert (
        edited["edit_of"] == original
        and edited["body"]["data"]["object"]["email"] == " Ada@Example.com"
    )
    shown = get(api, f"/dead-letters/{d}")
    assert shown["event_id"] == done["event_id"] and shown["original_event_id"] == original
    assert shown["actions"][-1]["action"] == "edit" and shown["actions"][-1]["by"] == "ada"
    assert get(api, "/actions")["actions"][0]["action"] == "edit"
    # no longer dead: a second edit is refused
    again = post(api, f"/dead-letters/{d}/edit", {"fields": {"email": "x@y.zz"}}, status=409)
    assert again["error"] == "not_dead"


def test_an_edit_the_mapping_refuses_is_400_listing_every_problem(
    api: FlaskClient, hub: OperatorHub
) -> None:
    d = hub.dead(category="mapping")
    refused = post(
        api,
        f"/dead-letters/{d}/edit",
        {"fields": {"email": "not an email", "colour": "red"}},
        status=400,
    )
    assert refused["error"] == "edit_rejected"
    assert [p["field"] for p in refused["problems"]] == ["colour"]
    refused = post(
        api, f"/dead-letters/{d}/edit", {"fields": {"email": "not an email"}}, status=400
    )
    assert [p["field"] for p in refused["problems"]] == ["email"]
    body = {"type": "customer.updated", "data": {"object": {"name": "no email"}}}
    refused = post(api, f"/dead-letters/{d}/edit", {"event_body": body}, status=400)
    assert "email" in {p["field"] for p in refused["problems"]}
    assert hub.state(d) == "dead"
    assert (
        api.post(
            "/api/v1/dead-letters/dlv_nope/edit",
            headers=ADMIN,
            json={"fields": {"email": "a@b.co"}},
        ).status_code
        == 404
    )


def test_a_whole_new_event_body_replays(api: FlaskClient, hub: OperatorHub) -> None:
    d = hub.dead()
    body = {
        "type": "customer.updated",
        "data": {"object": {"id": "cus_9", "email": "new@example.com"}},
    }
    done = post(api, f"/dead-letters/{d}/edit", {"event_body": body})
    assert done["result"] == "ok" and hub.state(d) == "pending"
    assert hub.ledger.raw_delivery(d)["rk"] == "crm:contacts:email=new@example.com"


# the action log, the document --------------------------------------------------------------------
def test_the_action_log_pages_with_a_cursor(api: FlaskClient, hub: OperatorHub) -> None:
    for _ in range(5):
        post(api, "/connections/crm/pause", {"reason": "x"})
        post(api, "/connections/crm/resume")
    page = get(api, "/actions", limit=4)
    assert len(page["actions"]) == 4 and page["next_cursor"]
    rest = get(api, "/actions", limit=10, cursor=page["next_cursor"])
    assert len(rest["actions"]) == 6 and rest["next_cursor"] is None
    assert {a["id"] for a in page["actions"]}.isdisjoint({a["id"] for a in rest["actions"]})
    assert api.get("/api/v1/actions?cursor=x", headers=ADMIN).status_code == 400


def test_the_openapi_document_describes_exactly_the_routes_the_app_has(api: FlaskClient) -> None:
    served = get(api, "/openapi.json")
    assert served["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path)
        for path, item in served["paths"].items()
        for method in item
        if method in ("get", "post")
    }
    app = api.application
    routed = {
        (method, "/" + rule.rule.removeprefix("/api/v1/").replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_dead_letters_from_before_the_filter_indexes_are_indexed_at_start(hub: OperatorHub) -> None:
    made = [hub.dead("crm"), hub.dead("erp", category="mapping")]
    keys = hub.ledger.keys
    hub.ledger.redis.delete(  # as an install from before these indexes has them
        keys.dead_by_connection("crm"),
        keys.dead_by_connection("erp"),
        keys.dead_by_mapping("customer-to-contact"),
        keys.dead_by_mapping("customer-to-account"),
        keys.dead_by_category("mapping"),
        keys.dead_by_category("rejected_by_target"),
    )
    api = hub.app().test_client()
    assert [r["id"] for r in get(api, "/dead-letters", category="mapping")["dead_letters"]] == [
        made[1]
    ]
    assert get(api, "/dead-letters", connection="crm")["total"] == 1
    assert hub.ledger.ensure_dead_indexes(["mapping", "rejected_by_target"]) == 0  # once only


# hot and cold: events found in Redis or the archive; a person's events erased from both ------
def test_an_archived_event_is_found_by_id_search_and_paging_and_says_so(
    api: FlaskClient, hub: OperatorHub
) -> None:
    archived = hub.archived("ada@example.com")
    hot = hub.receive(email="ada@example.com")["event"]
    detail = get(api, f"/events/{archived}")
    assert detail["archived"] is True and detail["id"] == archived
    assert [d["state"] for d in detail["deliveries"]] == ["delivered", "delivered"]
    assert get(api, f"/events/{hot}")["archived"] is False
    # a list pages through Redis's events, then the archive's
    seen, cursor = [], None
    while True:
        page = get(api, "/events", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [(e["id"], e["archived"]) for e in page["events"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [(hot, False), (archived, True)]
    by_email = get(api, "/events", q="ADA@example.com", limit=1)
    assert [e["id"] for e in by_email["events"]] == [hot]
    more = get(api, "/events", q="ADA@example.com", cursor=by_email["next_cursor"])
    assert [e["id"] for e in more["events"]] == [archived]
    assert api.get("/api/v1/events?cursor=archived:x", headers=ADMIN).status_code == 400


def test_purge_erases_a_persons_events_from_both_stores_attributed_in_the_action_log(
    api: FlaskClient, hub: OperatorHub
) -> None:
    archived = hub.archived("ada@example.com")
    hot = hub.receive(email="Ada@Example.com")
    hub.kill(hot["crm"])
    other = hub.receive(email="grace@example.com")["event"]
    for bad in ({}, {"email": "not an address"}, {"email": 7}):
        assert post(api, "/events/purge", bad, status=400)["error"] == "bad_request"
    assert post(api, "/events/purge", {"email": "ada@example.com"}, VIEWER, status=403)
    erased = post(api, "/events/purge", {"email": " ada@EXAMPLE.com"}, ADA)
    # the erp delivery of the hot event is still on its way: kept, to purge once delivered
    assert erased["erased_archived"] == [archived]
    assert erased["kept"] == {hot["event"]: "pending"}
    assert api.get(f"/api/v1/events/{archived}", headers=ADMIN).status_code == 404
    assert get(api, f"/events/{other}")["archived"] is False
    [action] = get(api, "/actions", limit=1)["actions"]
    assert (action["action"], action["by"], action["via"]) == ("purge", "ada", "api")
    assert "ada@example.com" not in json.dumps(action).lower()


def test_alerts_and_audit_answer_as_the_cli_json(api: FlaskClient, hub: OperatorHub) -> None:
    from core.alerting.service import evaluate_alerts

    hub.ledger.pause("crm", reason="auth", by="crmhub", now=time.time())
    evaluate_alerts(hub.ledger, hub.config, sinks=["oncall"], now=time.time() + 1)
    [alert] = get(api, "/alerts")["alerts"]
    assert (alert["kind"], alert["status"], alert["connection"]) == (
        "connection_paused",
        "firing",
        "crm",
    )
    assert get(api, "/alerts", VIEWER)["alerts"] == [alert]
    rows = get(api, "/audit")["integrations"]
    assert sorted(r["mapping"] for r in rows) == ["customer-to-account", "customer-to-contact"]
    assert all("no_owner" in r["flags"] for r in rows)  # no `integration:` block given
