"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.runtime import Hub
from core.errors import LedgerUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up (says nothing about Redis: a restart would not fix Redis)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to accept webhooks: configuration loaded and Redis answering on the connection
    the receiver's accepts go through (core/ledger/lane.py), so ready means a webhook would
    be accepted now."""
    hub: Hub = current_app.extensions["crmhub"]
    checks = {
        "config": f"{len(hub.config.sources)} sources, "
        f"{len(hub.config.connections)} connections, "
        f"{len(hub.config.mappings)} mappings"
    }
    try:
        hub.ledger.ping()
        checks["redis"] = "ok"
    except LedgerUnavailable as exc:
        checks["redis"] = str(exc)
        return jsonify({"status": "unavailable", "checks": checks}), 503
    return jsonify({"status": "ready", "checks": checks}), 200
