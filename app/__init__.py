"""The web edge: the webhook receiver, health checks (and later the operator API)."""

from __future__ import annotations

import logging

import redis
from flask import Flask

from core.config import Config
from core.observability import init_sentry
from core.settings import Settings


def create_app(settings: Settings | None = None, *, config: Config | None = None,
               redis_client: redis.Redis | None = None) -> Flask:
    """The receiver application. Reads env and config once; fails at start on bad config."""
    from app import health, metrics, webhooks
    from app.runtime import build_hub

    settings = settings or Settings.from_env()
    init_sentry(settings, "web")
    app = Flask("crmhub")
    hub = build_hub(settings, config, redis_client)
    app.extensions["crmhub"] = hub
    # the hot endpoint is plain WSGI in front of Flask (see app/webhooks.py for why)
    app.wsgi_app = webhooks.WebhookReceiver(app.wsgi_app, hub)  # type: ignore[method-assign]
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    logging.getLogger("crmhub").setLevel(logging.INFO)
    return app
