"""The dashboard (/ui) in-process: signing in with a token, the session cookie's flags, CSRF
on every state-changing form, read-only sessions, each page, and each action's button going
through the same core operations as the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from operator_hub import ADMIN_TOKEN, OPS_TOKEN, VIEWER_TOKEN, OperatorHub


@pytest.fixture
def hub(tmp_path: Path, key_prefix: str) -> OperatorHub:
    return OperatorHub.build(tmp_path, key_prefix)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match[1]


def sign_in(ui: FlaskClient, token: str = OPS_TOKEN) -> str:
    page = ui.get("/ui/login").get_data(as_text=True)
    response = ui.post("/ui/login", data={"token": token, "csrf": csrf_of(page), "next": "/ui/"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_of(ui.get("/ui/").get_data(as_text=True))


@pytest.fixture
def ui(hub: OperatorHub) -> FlaskClient:
    return hub.app().test_client()


def test_pages_need_a_session_and_the_login_keeps_where_you_were_going(ui: FlaskClient) -> None:
    response = ui.get("/ui/dead-letters?connection=crm")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/ui/login?next=")
    page = ui.get(response.headers["Location"]).get_data(as_text=True)
    wrong = ui.post("/ui/login", data={"token": "nope-nope-nope-nope", "csrf": csrf_of(page)})
    assert wrong.status_code == 401 and "not one of the configured" in wrong.get_data(as_text=True)
    signed = ui.post(
        "/ui/login",
        data={
            "token": ADMIN_TOKEN,
            "csrf": csrf_of(page),
            "next": "/ui/dead-letters?connection=crm",
        },
    )
    assert signed.headers["Location"] == "/ui/dead-letters?connection=crm"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert ADMIN_TOKEN not in cookie
    assert ui.get("/ui/dead-letters?connection=crm").status_code == 200


def test_only_dashboard_paths_are_followed_after_login(ui: FlaskClient) -> None:
    page = ui.get("/ui/login").get_data(as_text=True)
    for target in ("https://evil.example/", "//evil.example/ui/", "/api/v1/connections"):
        response = ui.post(
            "/ui/login", data={"token": ADMIN_TOKEN, "csrf": csrf_of(page), "next": target}
        )
        assert response.headers["Location"] == "/ui/"


def test_the_cookie_is_secure_over_https_or_behind_a_proxy_saying_so(ui: FlaskClient) -> None:
    page = ui.get("/ui/login").get_data(as_text=True)
    response = ui.post(
        "/ui/login",
        data={"token": ADMIN_TOKEN, "csrf": csrf_of(page)},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_post_without_its_csrf_token_is_refused(ui: FlaskClient, hub: OperatorHub) -> None:
    sign_in(ui)
    dead = hub.dead()
    for path, data in (
        ("/ui/connections/crm/pause", {"reason": "x"}),
        ("/ui/dead-letters/act", {"ids": dead, "action": "replay"}),
        ("/ui/login", {"token": ADMIN_TOKEN}),
    ):
        assert ui.post(path, data=data).status_code == 403
        assert ui.post(path, data=data | {"csrf": "forged"}).status_code == 403
    assert hub.state(dead) == "dead" and not hub.ledger.pause_info("crm")


def test_a_rotated_token_ends_its_sessions(tmp_path: Path, key_prefix: str) -> None:
    key = "session-key-" * 4
    first = OperatorHub.build(tmp_path, key_prefix, CRMHUB_SECRET_KEY=key)
    ui = first.app().test_client()
    sign_in(ui)
    cookie = ui.get_cookie("crmhub_session", path="/ui")
    assert cookie is not None

    def opens(**env: str) -> int:
        other = OperatorHub.build(tmp_path, key_prefix, client=first.ledger.redis, **env)
        client = other.app().test_client()
        client.set_cookie("crmhub_session", cookie.value, path="/ui")
        return client.get("/ui/").status_code

    assert opens(CRMHUB_SECRET_KEY=key) == 200  # another web process: the same session
    rotated = f"ada:admin:{OPS_TOKEN}-rotated"
    assert opens(CRMHUB_SECRET_KEY=key, CRMHUB_OPERATOR_TOKENS=rotated) == 302


def test_without_tokens_the_dashboard_says_how_to_turn_it_on(
    tmp_path: Path, key_prefix: str
) -> None:
    hub = OperatorHub.build(
        tmp_path, key_prefix, CRMHUB_OPERATOR_TOKEN="", CRMHUB_OPERATOR_TOKENS=""
    )
    page = hub.app().test_client().get("/ui/login")
    assert page.status_code == 401 and "CRMHUB_OPERATOR_TOKEN" in page.get_data(as_text=True)


def test_every_page_renders_from_this_origin_only(ui: FlaskClient, hub: OperatorHub) -> None:
    sign_in(ui)
    dead = hub.dead(email="grace@example.com")
    event = hub.ledger.raw_delivery(dead)["event_id"]
    for path in (
        "/ui/",
        "/ui/connections/crm",
        "/ui/dead-letters",
        "/ui/dead-letters?connection=crm&category=rejected_by_target&q=grace@example.com",
        f"/ui/dead-letters/{dead}",
        "/ui/events",
        "/ui/events?q=grace@example.com",
        f"/ui/events/{event}",
        "/ui/actions",
        "/ui/alerts",
        "/ui/audit",
    ):
        response = ui.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (path, html[:2000])
        assert not re.search(r'(src|href|action)="(https?:)?//', html), path
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    listed = ui.get("/ui/dead-letters?q=grace@example.com").get_data(as_text=True)
    assert dead in listed
    for missing in ("/ui/connections/nope", "/ui/dead-letters/dlv_nope", "/ui/events/evt_nope"):
        assert ui.get(missing).status_code == 404
    assert ui.get("/ui/dead-letters?category=nope").status_code == 400


def test_pause_and_resume_buttons(ui: FlaskClient, hub: OperatorHub) -> None:
    csrf = sign_in(ui)
    ui.post("/ui/connections/crm/pause", data={"reason": "crm upgrade", "csrf": csrf})
    pause = hub.ledger.pause_info("crm")
    assert pause and pause["by"] == "ada" and pause["reason"] == "crm upgrade"
    assert "Resume" in ui.get("/ui/connections/crm").get_data(as_text=True)
    ui.post("/ui/connections/crm/resume", data={"csrf": csrf})
    assert not hub.ledger.pause_info("crm")
    log = hub.ledger.actions.page(limit=5, cursor=None)[0]
    assert [(a["action"], a["via"]) for a in log] == [
        ("resume", "dashboard"),
        ("pause", "dashboard"),
    ]


def test_bulk_replay_shows_the_count_first_then_runs(ui: FlaskClient, hub: OperatorHub) -> None:
    csrf = sign_in(ui)
    made = [hub.dead() for _ in range(3)]
    hub.dead("erp")
    confirm = ui.post(
        "/ui/dead-letters/confirm", data={"scope": "all", "connection": "crm", "csrf": csrf}
    ).get_data(as_text=True)
    assert 'id="count">3<' in confirm and "Replay 3 dead letters?" in confirm
    assert {hub.state(d) for d in made} == {"dead"}
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', confirm))
    done = ui.post("/ui/dead-letters/act", data=form)
    assert done.status_code == 302 and "/ui/operations/" in done.headers["Location"]
    assert {hub.state(d) for d in made} == {"pending"}
    page = ui.get(done.headers["Location"]).get_data(as_text=True)
    assert "3 of 3 taken, 3 replayed" in page
    again = ui.post("/ui/dead-letters/act", data=form)  # the same form twice: one operation
    assert again.headers["Location"] == done.headers["Location"]


def test_discard_selected_needs_a_reason(ui: FlaskClient, hub: OperatorHub) -> None:
    csrf = sign_in(ui)
    dead = hub.dead()
    refused = ui.post("/ui/dead-letters/act", data={"ids": dead, "action": "discard", "csrf": csrf})
    assert refused.status_code == 400 and hub.state(dead) == "dead"
    ui.post(
        "/ui/dead-letters/act",
        data={"ids": dead, "action": "discard", "reason": "spam", "csrf": csrf},
    )
    assert hub.state(dead) == "discarded"


def test_edit_and_replay_previews_the_dry_run_before_submitting(
    ui: FlaskClient, hub: OperatorHub
) -> None:
    csrf = sign_in(ui)
    dead = hub.dead(email="ada@example", category="mapping")
    form = {
        "csrf": csrf,
        "field:email": "ada@example",
        "was:email": "ada@example",
        "field:name": "Ada Lovelace",
        "was:name": "Ada Lovelace",
    }
    bad = ui.post(f"/ui/dead-letters/{dead}/preview", data=form | {"field:email": "still bad"})
    assert bad.status_code == 200 and 'id="dry-run-bad"' in bad.get_data(as_text=True)
    preview = ui.post(
        f"/ui/dead-letters/{dead}/preview", data=form | {"field:email": "Ada@Example.com"}
    )
    html = preview.get_data(as_text=True)
    assert 'id="dry-run-ok"' in html and "ada@example.com" in html
    assert hub.state(dead) == "dead"
    edit = re.search(r'name="edit" value="([^"]+)"', html)
    assert edit
    import html as html_lib

    done = ui.post(
        f"/ui/dead-letters/{dead}/edit", data={"csrf": csrf, "edit": html_lib.unescape(edit[1])}
    )
    assert done.status_code == 302 and hub.state(dead) == "pending"
    shown = ui.get(f"/ui/dead-letters/{dead}").get_data(as_text=True)
    assert "an edit of" in shown and "edited and replayed" in shown


def test_a_read_only_session_sees_but_cannot_act(ui: FlaskClient, hub: OperatorHub) -> None:
    csrf = sign_in(ui, VIEWER_TOKEN)
    dead = hub.dead()
    page = ui.get("/ui/dead-letters").get_data(as_text=True)
    assert re.search(r'id="replay-selected"\s+disabled', page)
    assert ui.post("/ui/dead-letters/act", data={"ids": dead, "csrf": csrf}).status_code == 403
    assert hub.state(dead) == "dead"


def test_alerts_firing_show_on_the_overview_and_link_to_the_alerts_page(
    ui: FlaskClient, hub: OperatorHub
) -> None:
    import time

    from core.alerting.service import evaluate_alerts

    sign_in(ui)
    assert "connection_paused" not in ui.get("/ui/").get_data(as_text=True)
    hub.ledger.pause("crm", reason="auth", by="crmhub", now=time.time())
    evaluate_alerts(hub.ledger, hub.config, sinks=["oncall"], now=time.time() + 1)
    overview = ui.get("/ui/").get_data(as_text=True)
    row = re.search(r'<tr>\s*<td><a href="/ui/connections/crm".*?</tr>', overview, re.S)
    assert row and "connection_paused" in row[0]
    alerts = ui.get("/ui/alerts").get_data(as_text=True)
    assert "connection_paused" in alerts and "firing" in alerts
    audit = ui.get("/ui/audit").get_data(as_text=True)
    assert "customer-to-contact" in audit and "no_owner" in audit


def test_an_archived_event_opens_from_the_events_page_marked_archived(
    ui: FlaskClient, hub: OperatorHub
) -> None:
    sign_in(ui)
    archived = hub.archived("ada@example.com")
    listed = ui.get("/ui/events?cursor=archived:0").get_data(as_text=True)
    assert archived in listed and "archived" in listed
    page = ui.get(f"/ui/events/{archived}")
    assert page.status_code == 200 and "read from the archive" in page.get_data(as_text=True)
