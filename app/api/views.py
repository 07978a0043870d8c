"""/api/v1: the operator API. Each view checks its input (app/api/params.py), calls the
same core operation the CLI calls, and answers JSON; errors are JSON too (`error`, `detail`,
and for a refused edit every `problems` entry). The document of all of it is
app/api/openapi.yaml (GET /api/v1/openapi.json), which the tests hold the views to."""

from __future__ import annotations

import contextlib
import json
import re
import time
from functools import cache
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.api import params
from app.api.background import BackgroundRunner
from app.archive_access import process_archive
from app.operator_auth import ENABLE_HINT, Operator, bearer_operator
from app.runtime import Hub
from core import dead_letters, event_trace, operations
from core.alerting.service import alerts_overview
from core.archive.erasure import ArchiverBusy, purge_email
from core.audit import integration_audit
from core.errors import (
    ArchiveUnavailable,
    BadCursor,
    CrmhubError,
    EditRejected,
    LedgerUnavailable,
    OperatorRequestError,
)
from core.vocabulary import DeadCategory

bp = Blueprint("api", __name__, url_prefix="/api/v1")
#: what /events/purge takes: one address, no spaces or control characters
EMAIL_ADDRESS = re.compile(r"^[^\s@\x00-\x1f]+@[^\s@\x00-\x1f]+$")
runner = BackgroundRunner()


def hub() -> Hub:
    return current_app.extensions["crmhub"]


def operator() -> Operator:
    return g.operator


def error(status: int, code: str, detail: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": code, "detail": detail, **extra}), status


@bp.before_request
def authenticate() -> tuple[Response, int] | None:
    settings = hub().settings
    if not settings.operator_tokens:
        return error(401, "unauthorized", ENABLE_HINT)
    found = bearer_operator(settings, request)
    if found is None:
        response, status = error(
            401,
            "unauthorized",
            "send `Authorization: Bearer <token>` with a token from CRMHUB_OPERATOR_TOKEN or "
            "CRMHUB_OPERATOR_TOKENS",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="crmhub"'
        return response, status
    g.operator = found
    if request.method == "POST" and not found.may_act:
        return error(
            403,
            "forbidden",
            f"token {found.name!r} is read_only: actions need an admin token",
        )
    runner.adopt_stopped(hub())
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def json_body() -> dict[str, Any]:
    if not request.get_data():
        return {}
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise params.bad("body", "expected a JSON object")
    try:  # JSON can spell a lone surrogate (\ud800), which no stored text can hold
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise params.bad(
            "body", "holds text that is not valid Unicode (a lone surrogate)"
        ) from None
    return body


def _connection(name: str) -> dict[str, Any]:
    h = hub()
    if name not in h.config.connections:
        raise OperatorRequestError(
            404,
            "not_found",
            f"no connection named {name!r} (configured: "
            f"{', '.join(sorted(h.config.connections)) or 'none'})",
        )
    return next(r for r in operations.connection_status(h.ledger, h.config) if r["name"] == name)


# connections ------------------------------------------------------------------------------
@bp.get("/connections")
def connections() -> Response:
    h = hub()
    return jsonify(
        {
            "connections": operations.connection_status(h.ledger, h.config),
            "sources": operations.polling_status(h.ledger, h.config),
        }
    )


@bp.get("/connections/<name>")
def connection(name: str) -> Response:
    return jsonify(_connection(name))


@bp.post("/connections/<name>/pause")
def pause(name: str) -> Response:
    _connection(name)
    reason = params.text_param(json_body(), "reason", 500) or "manual"
    changed = hub().ledger.pause(
        name, reason=reason, by=operator().name, now=time.time(), via=operator().via
    )
    return jsonify({"connection": name, "paused": True, "changed": changed})


@bp.post("/connections/<name>/resume")
def resume(name: str) -> Response:
    _connection(name)
    json_body()
    released = hub().ledger.resume(name, time.time(), by=operator().name, via=operator().via)
    return jsonify({"connection": name, "paused": False, "released": released})


# events ------------------------------------------------------------------------------------
@bp.get("/events")
def events() -> Response:
    h = hub()
    return jsonify(
        event_trace.events_page(
            h.ledger,
            **params.event_filters(request.args, h.config),
            limit=params.limit_param(request.args),
            cursor=params.text_param(request.args, "cursor"),
            archive=process_archive(),
        )
    )


@bp.post("/events/purge")
def purge() -> Response:
    """Erase a person's events from Redis and the archive (as `crmhub events purge`)."""
    email = params.text_param(json_body(), "email", 320)
    if not email or not EMAIL_ADDRESS.match(email.strip()):
        raise params.bad("email", "expected the email address whose events are to be erased")
    erasure = purge_email(
        hub().ledger, process_archive(), email, by=operator().name, via=operator().via
    )
    return jsonify(erasure.as_dict())


@bp.get("/events/<event_id>")
def event(event_id: str) -> Response:
    found = event_trace.event_detail(hub().ledger, event_id, process_archive())
    if found is None:
        raise OperatorRequestError(
            404, "not_found", f"no event {event_id!r} (ids look like evt_...)"
        )
    return jsonify(found)


# dead letters ------------------------------------------------------------------------------
@bp.get("/dead-letters")
def dead_letter_list() -> Response:
    h = hub()
    return jsonify(
        dead_letters.page(
            h.ledger,
            params.dead_query(request.args, h.config),
            limit=params.limit_param(request.args),
            cursor=params.text_param(request.args, "cursor"),
        )
    )


@bp.get("/dead-letters/<delivery_id>")
def dead_letter(delivery_id: str) -> Response:
    found = event_trace.dead_letter_detail(hub().ledger, delivery_id)
    if found is None:
        raise OperatorRequestError(
            404, "not_found", f"no delivery {delivery_id!r} (ids look like dlv_...)"
        )
    return jsonify(found)


# the action log and operations ---------------------------------------------------------------
@bp.get("/actions")
def actions() -> Response:
    rows, following = hub().ledger.actions.page(
        limit=params.limit_param(request.args), cursor=params.text_param(request.args, "cursor")
    )
    return jsonify({"actions": rows, "next_cursor": following})


# alerts and the integration audit (the CLI's `alerts --json` and `audit --json`) ------------
@bp.get("/alerts")
def alerts() -> Response:
    return jsonify(alerts_overview(hub().ledger, limit=params.limit_param(request.args)))


@bp.get("/audit")
def audit() -> Response:
    h = hub()
    return jsonify(integration_audit(h.ledger, h.config))


@bp.get("/operations/<operation_id>")
def operation(operation_id: str) -> Response:
    found = dead_letters.operation(hub().ledger, operation_id)
    if found is None:
        raise OperatorRequestError(404, "not_found", f"no operation {operation_id!r}")
    return jsonify(found)


@cache
def openapi_document() -> dict[str, Any]:
    text = resources.files("app.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(openapi_document()), mimetype="application/json")


# errors -------------------------------------------------------------------------------------
def register(app: Flask) -> None:
    """The API's blueprint and its JSON errors (an unknown /api path or method included)."""
    from app.api import dead_letter_actions  # noqa: F401  (its routes join the blueprint)

    app.register_blueprint(bp)
    with contextlib.suppress(LedgerUnavailable):  # Redis down at start: the next start does it
        app.extensions["crmhub"].ledger.ensure_dead_indexes([c.value for c in DeadCategory])

    @app.errorhandler(OperatorRequestError)
    def refused(exc: OperatorRequestError) -> tuple[Response, int]:
        return error(exc.status, exc.code, exc.detail, **exc.extra)

    @app.errorhandler(EditRejected)
    def rejected(exc: EditRejected) -> tuple[Response, int]:
        return error(400, "edit_rejected", str(exc), problems=exc.problems)

    @app.errorhandler(BadCursor)
    def bad_cursor(exc: BadCursor) -> tuple[Response, int]:
        return error(400, "bad_request", f"cursor: {exc}")

    @app.errorhandler(LedgerUnavailable)
    @app.errorhandler(ArchiveUnavailable)
    @app.errorhandler(ArchiverBusy)
    def unavailable(exc: CrmhubError) -> tuple[Response, int]:
        response, status = error(503, "unavailable", f"{exc}; try again shortly")
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if not request.path.startswith(bp.url_prefix or "/api/"):
            return exc
        return error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or "")
