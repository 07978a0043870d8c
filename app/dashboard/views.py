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
from app.api.views import hub, runner
from app.dashboard import current_operator, security_headers, signed_in, template_globals
from app.operator_auth import login as check_token
from core import dead_letters, edit_replay, event_trace, operations
from core.errors import BadCursor, EditRejected, OperatorRequestError
from core.ledger.views import iso_from_ms
from core.paths import get_path
from core.vocabulary import DeadCategory, OperatorAction

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
    for row in rows:
        row["backlog_age"] = _age(h.ledger.backlog_since_ms(row["name"], _objects(row["name"])))
    return render("overview.html", connections=rows)


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


# dead letters ---------------------------------------------------------------------------------
def _filters() -> dict[str, str]:
    return {k: request.values[k] for k in params.DEAD_FILTERS if request.values.get(k)}


@bp.get("/dead-letters")
def dead_letter_list() -> tuple[str, int]:
    h = hub()
    given = _filters()
    query = params.dead_query(given, h.config)
    found = dead_letters.page(h.ledger, query, limit=PAGE, cursor=request.args.get("cursor"))
    return render(
        "dead_letters.html",
        page=found,
        filters=given,
        connections=sorted(h.config.connections),
        mappings=sorted(h.config.mappings),
    )


def _choice() -> tuple[list[str] | None, Any, dict[str, str]]:
    """The dead letters a form means: the ticked ids, or (scope=all) the filter's matches."""
    h = hub()
    if request.form.get("scope") == "all":
        given = _filters()
        return None, params.dead_query(given, h.config), given
    ids = request.form.getlist("ids")
    if not ids:
        raise OperatorRequestError(400, "bad_request", "tick at least one dead letter first")
    return ids, None, {}


@bp.post("/dead-letters/confirm")
def confirm() -> tuple[str, int]:
    """The count first: what a replay or discard would take, before it runs."""
    action = OperatorAction(request.form.get("action", "replay"))
    ids, query, given = _choice()
    rows = dead_letters.chosen(hub().ledger, ids, query)
    preview = dead_letters.dry_run(action, rows)
    return render(
        "confirm.html",
        action=action,
        count=preview[f"would_{action}"],
        sample=preview["sample"],
        ids=ids or [],
        filters=given,
        reason=request.form.get("reason", ""),
    )


@bp.post("/dead-letters/act")
def act() -> Any:
    h = hub()
    me = current_operator()
    action = OperatorAction(request.form.get("action", "replay"))
    reason = request.form.get("reason", "").strip()[:500]
    if action == OperatorAction.DISCARD and not reason:
        raise OperatorRequestError(400, "bad_request", "a discard needs a reason")
    ids, query, _ = _choice()
    rows = dead_letters.chosen(h.ledger, ids, query)
    result = dead_letters.start(
        h.ledger,
        h.config,
        action,
        rows,
        by=me.name,
        via=me.via,
        reason=reason,
        query=query,
        idempotency_key=request.form.get("once") or None,
    )
    if result["background"] and not result.get("repeated"):
        runner.run(h, result["id"])
    return redirect(url_for("dashboard.operation", operation_id=result["id"]))


@bp.get("/operations/<operation_id>")
def operation(operation_id: str) -> tuple[str, int]:
    found = dead_letters.operation(hub().ledger, operation_id)
    if found is None:
        abort(404)
    return render("operation.html", op=found)


def _field_values(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The mapping's fields with the value each takes from the event now (the edit form)."""
    mapping = hub().config.mappings.get(detail["mapping"])
    body = (detail.get("event") or {}).get("body")
    if mapping is None:
        return []
    return [
        {
            "name": f.name,
            "from": f.from_[0] if f.from_ else None,
            "value": next(
                (get_path(body, p) for p in f.from_ if get_path(body, p) is not None), None
            ),
        }
        for f in mapping.fields
    ]


@bp.get("/dead-letters/<delivery_id>")
def dead_letter(delivery_id: str) -> tuple[str, int]:
    detail = event_trace.dead_letter_detail(hub().ledger, delivery_id)
    if detail is None:
        abort(404)
    return render("dead_letter.html", d=detail, fields=_field_values(detail))


def _edit_request() -> dict[str, Any]:
    """The edit a form describes: changed fields (those whose box differs), or a body."""
    if request.form.get("mode") == "body":
        try:
            body = json.loads(request.form.get("event_body", ""))
        except ValueError as exc:
            raise EditRejected(
                "the event body is not JSON",
                [{"field": "(event body)", "problem": str(exc), "value": None}],
            ) from None
        if not isinstance(body, dict):
            raise EditRejected(
                "the event body must be a JSON object",
                [{"field": "(event body)", "problem": "not an object", "value": None}],
            )
        return {"event_body": body}
    fields = {}
    for key, value in request.form.items():
        if key.startswith("field:") and request.form.get(f"was:{key[6:]}") != value:
            fields[key[6:]] = _typed(value)
    if not fields:
        raise EditRejected(
            "nothing was changed",
            [{"field": "(fields)", "problem": "change a value first", "value": None}],
        )
    return {"fields": fields}


def _typed(text: str) -> Any:
    """A form value as the JSON it spells when it is one (42, true, null, [..]), else text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if not isinstance(value, str) else text


@bp.post("/dead-letters/<delivery_id>/preview")
def edit_preview(delivery_id: str) -> tuple[str, int]:
    """The mapping's dry run of the edit, shown before it is submitted."""
    h = hub()
    try:
        edit = _edit_request()
        seen = edit_replay.preview(h.ledger, h.config, delivery_id, **edit)
    except EditRejected as exc:
        return _edit_refused(delivery_id, exc)
    if seen is None:
        abort(404)
    return render(
        "edit_preview.html",
        delivery_id=delivery_id,
        edit=edit,
        seen=seen,
        run=seen["dry_run"],
        edit_json=json.dumps(edit),
    )


@bp.post("/dead-letters/<delivery_id>/edit")
def edit(delivery_id: str) -> Any:
    h = hub()
    me = current_operator()
    try:
        edit = json.loads(request.form.get("edit", "{}"))
        done = edit_replay.edit_and_replay(
            h.ledger, h.config, delivery_id, by=me.name, via=me.via, now=time.time(), **edit
        )
    except (EditRejected, TypeError, ValueError) as exc:
        return _edit_refused(
            delivery_id, exc if isinstance(exc, EditRejected) else EditRejected(str(exc), [])
        )
    if done is None:
        abort(404)
    if done["result"] != "ok":
        flash(f"not replayed: the delivery is {done['result']} now")
    else:
        flash("edited and replayed; the original event is kept")
    return redirect(url_for("dashboard.dead_letter", delivery_id=delivery_id))


def _edit_refused(delivery_id: str, exc: EditRejected) -> tuple[str, int]:
    detail = event_trace.dead_letter_detail(hub().ledger, delivery_id)
    if detail is None:
        abort(404)
    return render("dead_letter.html", 400, d=detail, fields=_field_values(detail), refused=exc)


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
    )
    return render("events.html", page=found, filters=given, sources=sorted(h.config.sources))


@bp.get("/events/<event_id>")
def event(event_id: str) -> tuple[str, int]:
    found = event_trace.event_detail(hub().ledger, event_id)
    if found is None:
        abort(404)
    return render("event.html", e=found)


@bp.get("/actions")
def actions() -> tuple[str, int]:
    rows, following = hub().ledger.actions.page(limit=PAGE, cursor=request.args.get("cursor"))
    return render("actions.html", rows=rows, next_cursor=following)


@bp.app_template_filter("when")
def _when(value: Any) -> str:
    if isinstance(value, (int, float)):
        return iso_from_ms(int(value * 1000)) or ""
    return str(value or "-")
