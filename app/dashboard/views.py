"""The dashboard's pages: each reads through the same core operations the API and the CLI
use (core/operations.py, core/dead_letters.py, core/edit_replay.py, core/event_trace.py) and
renders a template; each action is a POST form (CSRF-checked in app/dashboard/__init__.py)
that redirects to the page showing its outcome. Every page has a stable URL an alert can
link to: /ui/connections/<name>, /ui/dead-letters?connection=..&category=.., /ui/events/<id>."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.api import params
from app.api.views import hub
from app.archive_access import process_archive
from app.dashboard import current_operator, security_headers, signed_in, template_globals
from app.operator_auth import login as check_token
from core import dead_letters, event_trace, operations
from core.alerting.service import alerts_overview
from core.audit import integration_audit
from core.errors import BadCursor, OperatorRequestError
from core.ledger.views import iso_from_ms
from core.vocabulary import DeadCategory

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)
PAGE = 50
bp.before_request(signed_in)  # a session (or the login page), CSRF on every POST
bp.after_request(security_headers)


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return template_globals() | {"categories": [c.value for c in DeadCategory]}


@bp.app_template_filter("pretty")
def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    from flask import g

    return render_template(template, me=getattr(g, "ui_operator", None), **context), status


@bp.errorhandler(OperatorRequestError)
def _refused(exc: OperatorRequestError) -> tuple[str, int]:
    return render("error.html", exc.status, title="Not possible", detail=exc.detail)


@bp.errorhandler(BadCursor)
def _bad_cursor(exc: BadCursor) -> tuple[str, int]:
    return render("error.html", 400, title="Bad page link", detail=str(exc))


@bp.errorhandler(403)
def _forbidden(exc: Any) -> tuple[str, int]:
    return render("error.html", 403, title="Refused", detail=getattr(exc, "description", ""))


# signing in -----------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    settings = hub().settings
    if not settings.operator_tokens:
        return render(
            "login.html",
            401,
            off=True,
            detail="The dashboard is off: no operator token is configured. Set "
            "CRMHUB_OPERATOR_TOKEN or CRMHUB_OPERATOR_TOKENS and restart the web process.",
        )
    target = request.values.get("next", "")
    if not target.startswith("/ui/") or target.startswith("//"):
        target = url_for("dashboard.overview")
    if request.method == "POST":
        token = check_token(settings, request.form.get("token", ""))
        if token is None:
            return render(
                "login.html",
                401,
                error="That token is not one of the configured ones.",
                next=target,
            )
        csrf = session.get("csrf")
        session.clear()
        session.permanent = True
        session.update(name=token.name, fp=token.fingerprint, csrf=csrf)
        return redirect(target)
    return render("login.html", next=target)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("dashboard.login"))


# connections ----------------------------------------------------------------------------------
def _objects(connection: str) -> list[str]:
    return sorted({m.object for m in hub().config.mappings.values() if m.connection == connection})


def _age(since_ms: int | None) -> str | None:
    if since_ms is None:
        return None
    seconds = max(0, int(time.time() - since_ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@bp.get("/")
def overview() -> tuple[str, int]:
    h = hub()
    rows = operations.connection_status(h.ledger, h.config)
    firing = [a for a in alerts_overview(h.ledger)["alerts"] if a["status"] == "firing"]
    for row in rows:
        row["backlog_age"] = _age(h.ledger.backlog_since_ms(row["name"], _objects(row["name"])))
        row["alerts"] = [a for a in firing if a["connection"] == row["name"]]
    unattached = [a for a in firing if a["connection"] not in h.config.connections]
    return render("overview.html", connections=rows, unattached=unattached)


@bp.get("/connections/<name>")
def connection(name: str) -> tuple[str, int]:
    h = hub()
    if name not in h.config.connections:
        abort(404)
    row = next(r for r in operations.connection_status(h.ledger, h.config) if r["name"] == name)
    row["backlog_age"] = _age(h.ledger.backlog_since_ms(name, _objects(name)))
    recent = dead_letters.page(
        h.ledger, params.dead_query({"connection": name}, h.config), limit=10, cursor=None
    )
    return render(
        "connection.html",
        c=row,
        config=h.config.connections[name],
        breaker=h.ledger.connection_state(name)["breaker"],
        recent=recent,
    )


@bp.post("/connections/<name>/pause")
def pause(name: str) -> Any:
    h = hub()
    if name not in h.config.connections:
        abort(404)
    me = current_operator()
    reason = (request.form.get("reason") or "manual").strip()[:500]
    changed = h.ledger.pause(name, reason=reason, by=me.name, now=time.time(), via=me.via)
    flash(f"{name} paused" if changed else f"{name} was already paused")
    return redirect(url_for("dashboard.connection", name=name))


@bp.post("/connections/<name>/resume")
def resume(name: str) -> Any:
    h = hub()
    if name not in h.config.connections:
        abort(404)
    me = current_operator()
    released = h.ledger.resume(name, time.time(), by=me.name, via=me.via)
    flash(f"{name} resumed; {released} held deliveries released in order")
    return redirect(url_for("dashboard.connection", name=name))


# events and actions ---------------------------------------------------------------------------
@bp.get("/events")
def events() -> tuple[str, int]:
    h = hub()
    given = {k: request.args[k] for k in params.EVENT_FILTERS if request.args.get(k)}
    found = event_trace.events_page(
        h.ledger,
        **params.event_filters(given, h.config),
        limit=PAGE,
        cursor=request.args.get("cursor"),
        archive=process_archive(),
    )
    return render("events.html", page=found, filters=given, sources=sorted(h.config.sources))


@bp.get("/events/<event_id>")
def event(event_id: str) -> tuple[str, int]:
    found = event_trace.event_detail(hub().ledger, event_id, process_archive())
    if found is None:
        abort(404)
    return render("event.html", e=found)


# alerts and the integration audit -------------------------------------------------------------
@bp.get("/alerts")
def alerts() -> tuple[str, int]:
    return render("alerts.html", rows=alerts_overview(hub().ledger, limit=100)["alerts"])


@bp.get("/audit")
def audit() -> tuple[str, int]:
    h = hub()
    return render("audit.html", rows=integration_audit(h.ledger, h.config)["integrations"])


@bp.get("/actions")
def actions() -> tuple[str, int]:
    rows, following = hub().ledger.actions.page(limit=PAGE, cursor=request.args.get("cursor"))
    return render("actions.html", rows=rows, next_cursor=following)


@bp.app_template_filter("when")
def _when(value: Any) -> str:
    if isinstance(value, (int, float)):
        return iso_from_ms(int(value * 1000)) or ""
    return str(value or "-")
