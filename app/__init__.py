"""The web edge: the webhook receiver, health checks, metrics, and the operator API and
dashboard."""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import InternalServerError

from core.config import Config
from core.observability import init_sentry
from core.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    config: Config | None = None,
    redis_client: redis.Redis | None = None,
) -> Flask:
    """The receiver application. Reads env and config at start (and fails on a bad config);
    a `crmhub reload` makes it read the config again, keeping the old one if that fails."""
    from app import health, metrics, webhooks
    from app.runtime import Hub, build_hub, reconfigured
    from connectors.validation import validated_config
    from core.ledger import open_ledger
    from core.reload import Reloadable

    settings = settings or Settings.from_env()
    init_sentry(settings, "web")
    app = Flask("crmhub")
    ledger = open_ledger(settings, redis_client)
    generation = ledger.generations.current()  # before reading the file
    hub = build_hub(settings, config, ledger)
    app.extensions["crmhub"] = hub  # the current hub (a configuration reload swaps it)

    def swapped(old: Hub, new: Hub) -> None:
        app.extensions["crmhub"] = new

    # `crmhub reload`: checked before each webhook, at most once a second (core/reload.py)
    live = Reloadable(
        hub,
        generation=generation,
        generations=ledger.generations,
        kind="web",
        load=lambda: validated_config(settings),
        rebuild=reconfigured,
        swapped=swapped,
    )
    # the hot endpoint is plain WSGI in front of Flask (see app/webhooks.py for why)
    app.wsgi_app = webhooks.WebhookReceiver(app.wsgi_app, live)  # type: ignore[method-assign]
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    # the operator surface: the API (/api/v1) and the dashboard (/ui), app/api/, app/dashboard/
    from app import dashboard
    from app.api import views as api_views

    api_views.register(app)
    dashboard.register(app, settings)
    app.register_error_handler(InternalServerError, _internal_error)
    # for the gunicorn worker (app/buffered_worker.py): the largest body any source accepts
    # (it reads whole requests before a thread runs them), and where to count its own answers
    app.config["RECEIVER_LARGEST_BODY_BYTES"] = max(
        (r.max_body_bytes for r in hub.receivers.values()), default=settings.max_body_bytes
    )
    app.config["RECEIVER_COUNT_ANSWER"] = hub.answers.answer
    logging.getLogger("crmhub").setLevel(logging.INFO)
    return app


def _internal_error(exc: InternalServerError) -> tuple[Response, int]:
    """A bug in a Flask route: JSON like every other answer, not werkzeug's HTML page (Flask
    has logged the exception and signalled it to error reporting before calling this)."""
    from app.webhooks import internal_error

    status, payload, _ = internal_error()
    return jsonify(payload), status
