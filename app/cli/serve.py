"""`crmhub serve`: the whole hub in one command (receiver, worker, scheduler)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from app.cli.common import (
    EXIT_UNAVAILABLE,
    CliContext,
    fail,
    handles_hub_errors,
    pass_ctx,
)
from app.listen import address_in_use
from app.runtime import validated_config
from app.supervisor import Child, EmbeddedRedisPart, Supervisor
from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from core.ledger import open_ledger
from core.redis_client import connect, describe
from core.reload import reload_now
from core.settings import Settings

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn_conf.py"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: the demo's fakes: a generic REST CRM and a HubSpot (its OAuth client from the environment)
DEMO_TARGET_PORT = int(os.environ.get("CRMHUB_DEMO_PORT", "8900"))
DEMO_HUBSPOT_PORT = int(os.environ.get("CRMHUB_DEMO_HUBSPOT_PORT", "8901"))


def _children(host: str, port: int, ctx: CliContext, demo: bool) -> list[Child]:
    s = ctx.settings
    py = sys.executable
    children = [
        Child("receiver", [py, "-m", "gunicorn", "-c", str(GUNICORN_CONF),
                           "--bind", f"{host}:{port}", "app.wsgi:app"]),
        Child("scheduler", [py, "-m", "celery", "-A", "workers.celery_app", "beat",
                            "--loglevel", "INFO"]),
        Child("worker", [py, "-m", "celery", "-A", "workers.celery_app", "worker",
                         "--loglevel", "INFO", "--concurrency", str(s.worker_concurrency),
                         "--queues", f"{s.celery_queue},{s.control_queue}",
                         "--without-gossip", "--without-mingle",
                         "--hostname", f"crmhub-worker-{os.getpid()}@%h"], stop_timeout=60),
    ]
    if demo:
        env = s.environ
        children.append(Child("demo target", [py, str(EXAMPLES / "demo_target.py"),
                                              "--port", str(DEMO_TARGET_PORT)]))
        children.append(Child("fake hubspot", [
            py, str(EXAMPLES / "fake_hubspot.py"), "--port", str(DEMO_HUBSPOT_PORT),
            "--client-id", env.get("HUBSPOT_CLIENT_ID", ""),
            "--client-secret", env.get("HUBSPOT_CLIENT_SECRET", ""),
            "--refresh-token", env.get("HUBSPOT_REFRESH_TOKEN", "")]))
    return children


def reload_on_hangup(settings: Settings, url: str) -> Callable[[], object]:
    """SIGHUP to `crmhub serve`: what `crmhub reload` does (check, then announce)."""
    return lambda: reload_now("serve", lambda: validated_config(settings),
                              lambda: open_ledger(settings, connect(url)).generations)


@click.command()
@click.option("--host", default=None, help="Bind address [env CRMHUB_HOST, 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [env CRMHUB_PORT, 8000].")
@click.option("--demo", is_flag=True, help="Also run the demo target CRM (examples/).")
@pass_ctx
@handles_hub_errors
def serve(ctx: CliContext, host: str | None, port: int | None, demo: bool) -> None:
    """Run the receiver (gunicorn), a Celery worker and the scheduler; Ctrl-C stops all.

    Without CRMHUB_REDIS_URL, an embedded redis-server (AOF on) runs under ./var/redis.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s crmhub serve: %(message)s")
    settings = ctx.settings
    host = host or settings.host
    port = port or settings.port
    config = validated_config(settings)
    busy = address_in_use(host, port)
    if busy:
        fail(busy, EXIT_UNAVAILABLE)
    settings.var_dir.mkdir(parents=True, exist_ok=True)     # the beat schedule lives there
    click.echo(f"config: {config.path} ({len(config.sources)} sources, "
               f"{len(config.connections)} connections, {len(config.mappings)} mappings)")

    embedded: EmbeddedRedis | None = None
    if settings.redis_url:
        url = settings.redis_url
        try:
            connect(url).ping()
        except Exception as exc:
            fail(f"cannot reach CRMHUB_REDIS_URL {describe(url)}: {exc}", EXIT_UNAVAILABLE)
        click.echo(f"redis: {describe(url)} (from CRMHUB_REDIS_URL)")
    else:
        try:
            embedded = EmbeddedRedis(settings.embedded_redis_dir)
            url = embedded.start()
        except EmbeddedRedisError as exc:
            fail(str(exc), EXIT_UNAVAILABLE)
        click.echo(f"redis: embedded redis-server at {url} (AOF under "
                   f"{settings.embedded_redis_dir}; binary {embedded.binary})")

    env = dict(os.environ, CRMHUB_REDIS_URL=url, CRMHUB_HOST=host, CRMHUB_PORT=str(port))
    env.setdefault("CRMHUB_CONFIG", str(settings.config_path))
    children = _children(host, port, ctx, demo)
    click.echo(f"receiver: http://{host}:{port} (gunicorn)  worker: celery, "
               f"{settings.worker_concurrency} processes, queue {settings.celery_queue}  "
               "scheduler: celery beat")
    if demo:
        click.echo(f"demo CRM: http://127.0.0.1:{DEMO_TARGET_PORT}   fake HubSpot: "
                   f"http://127.0.0.1:{DEMO_HUBSPOT_PORT} (records: /_control/records)")
    click.echo("Ctrl-C stops everything.")
    code = 0
    services = [EmbeddedRedisPart(embedded)] if embedded is not None else []
    try:
        code = Supervisor(children, env, services=services,
                          on_hangup=reload_on_hangup(settings, url)).run()
    finally:
        if embedded is not None:
            embedded.stop()
        click.echo("crmhub stopped.")
    sys.exit(code)
