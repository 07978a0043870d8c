"""The dashboard's dead-letter pages: the filtered list, the count before a bulk replay or
discard, an operation's progress, a dead letter with replay, discard and edit-and-replay (the
mapping's dry run shown before the edit is submitted). Routes of app/dashboard/views.py's
blueprint."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import abort, flash, redirect, request, url_for

from app.api import params
from app.api.views import hub, runner
from app.dashboard import current_operator
from app.dashboard.views import PAGE, bp, render
from core import dead_letters, edit_replay, event_trace
from core.errors import EditRejected, OperatorRequestError
from core.paths import get_path
from core.vocabulary import OperatorAction


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
