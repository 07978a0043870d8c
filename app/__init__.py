"""The web edge: the webhook receiver, health checks (and later the operator API)."""

from __future__ import annotations

import logging

import redis
from flask import Flask

from core.config import Config, load_config
from core.settings import Settings


def create_app(settings: Settings | None = None, *, config: Config | None = None,
               redis_client: redis.Redis | None = None) -> Flask:
    """The receiver application. Reads env and config at start (and fails on a bad config);
    a `crmhub reload` makes it read the config again, keeping the old one if that fails."""
    from app import health, metrics, webhooks
    from app.runtime import Hub, build_hub, reconfigured
    from core.redis_client import connect, resolve_redis_url
    from core.reload import Reloadable, read_generation

    settings = settings or Settings.from_env()
    app = Flask("crmhub")
    client = redis_client or connect(resolve_redis_url(settings))
    generation = read_generation(client, settings.key_prefix)   # before reading the file
    hub = build_hub(settings, config, client)
    app.extensions["crmhub"] = hub      # the current hub (a configuration reload swaps it)

    def swapped(old: Hub, new: Hub) -> None:
        app.extensions["crmhub"] = new

    # `crmhub reload`: checked before each webhook, at most once a second (core/reload.py)
    live = Reloadable(hub, generation=generation, client=client, prefix=settings.key_prefix,
                      kind="web", load=lambda: load_config(settings.config_path,
                                                           settings.environ),
                      rebuild=reconfigured, swapped=swapped)
    # the hot endpoint is plain WSGI in front of Flask (see app/webhooks.py for why)
    app.wsgi_app = webhooks.WebhookReceiver(app.wsgi_app, live)  # type: ignore[method-assign]
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    logging.getLogger("crmhub").setLevel(logging.INFO)
    return app
