"""`crmhub serve`: the whole hub in one command (receiver, worker, scheduler)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from app import demo as demo_mode
from app.cli.common import (
    EXIT_UNAVAILABLE,
    CliContext,
    fail,
    handles_hub_errors,
    pass_ctx,
)
from app.listen import address_in_use
from app.supervisor import Child, EmbeddedRedisPart, Supervisor
from connectors.validation import validated_config
from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from core.ledger import open_ledger
from core.logs import use_json_logs
from core.redis_client import connect, describe
from core.reload import reload_now
from core.settings import Settings

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn_conf.py"


def _children(host: str, port: int, s: Settings, demo: bool) -> list[Child]:
    py = sys.executable
    children = [
        Child(
            "receiver",
            [
                py,
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONF),
                "--bind",
                f"{host}:{port}",
                "app.wsgi:app",
            ],
        ),
        Child(
            "scheduler",
            [py, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", "INFO"],
        ),
        Child(
            "worker",
            [
                py,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(s.worker_concurrency),
                "--queues",
                f"{s.celery_queue},{s.control_queue}",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"crmhub-worker-{os.getpid()}@%h",
            ],
            stop_timeout=60,
        ),
    ]
    if demo:
        children.extend(Child(name, argv) for name, argv in demo_mode.fake_commands(s).items())
    return children


def _demo_ports_free(settings: Settings, receiver_port: int) -> None:
    """A demo port taken (or two parts on one port) ends `serve` here, before anything
    starts, with the setting to change; not a fake restarting until the hub gives up."""
    clash = demo_mode.port_clash(settings, receiver_port)
    if clash:
        fail(clash, EXIT_UNAVAILABLE)
    for what, port, setting in (
        ("the demo CRM", settings.demo_port, "CRMHUB_DEMO_PORT"),
        ("the fake HubSpot", settings.demo_hubspot_port, "CRMHUB_DEMO_HUBSPOT_PORT"),
    ):
        busy = address_in_use(demo_mode.FAKES_HOST, port, setting)
        if busy:
            fail(f"{what}: {busy}", EXIT_UNAVAILABLE)


def reload_on_hangup(settings: Settings, url: str) -> Callable[[], object]:
    """SIGHUP to `crmhub serve`: what `crmhub reload` does (check, then announce)."""
    return lambda: reload_now(
        "serve",
        lambda: validated_config(settings),
        lambda: open_ledger(settings, connect(url)).generations,
    )


@click.command()
@click.option("--host", default=None, help="Bind address [env CRMHUB_HOST, 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [env CRMHUB_PORT, 8000].")
@click.option(
    "--demo",
    is_flag=True,
    help="Also run the fake CRMs (a HubSpot, a generic REST CRM); without "
    "CRMHUB_CONFIG or ./crmhub.yaml, on the demo's own configuration.",
)
@pass_ctx
@handles_hub_errors
def serve(ctx: CliContext, host: str | None, port: int | None, demo: bool) -> None:
    """Run the receiver (gunicorn), a Celery worker and the scheduler; Ctrl-C stops all.

    Without CRMHUB_REDIS_URL, an embedded redis-server (AOF on) runs under ./var/redis.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s crmhub serve: %(message)s")
    settings = ctx.settings
    if settings.log_format == "json":  # its children read CRMHUB_LOG_FORMAT themselves
        use_json_logs("serve")
    host = host or settings.host
    port = port or settings.port
    if demo:
        _demo_ports_free(settings, port)
        settings = demo_mode.prepare(settings)
    config = validated_config(settings)
    busy = address_in_use(host, port)
    if busy:
        fail(busy, EXIT_UNAVAILABLE)
    settings.var_dir.mkdir(parents=True, exist_ok=True)  # the beat schedule lives there
    click.echo(
        f"config: {config.path} ({len(config.sources)} sources, "
        f"{len(config.connections)} connections, {len(config.mappings)} mappings)"
    )

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
        click.echo(
            f"redis: embedded redis-server at {url} (AOF under "
            f"{settings.embedded_redis_dir}; binary {embedded.binary})"
        )

    if demo:  # the operator API and dashboard on, with the demo's own token
        settings = demo_mode.with_operator_token(settings)
    env = dict(settings.environ, CRMHUB_REDIS_URL=url, CRMHUB_HOST=host, CRMHUB_PORT=str(port))
    env.setdefault("CRMHUB_CONFIG", str(settings.config_path))
    children = _children(host, port, settings, demo)
    click.echo(
        f"receiver: http://{host}:{port} (gunicorn)  worker: celery, "
        f"{settings.worker_concurrency} processes, queue {settings.celery_queue}  "
        "scheduler: celery beat"
    )
    if demo:
        env_file = demo_mode.write_env_file(settings, host, port)
        click.echo(
            f"demo CRM: {demo_mode.crm_url(settings)}   fake HubSpot: "
            f"{demo_mode.hubspot_url(settings)} (records: /_control/records)"
        )
        click.echo(f"another shell: . {env_file}   then: crmhub send-test stripe")
        click.echo(
            f"dashboard: http://{host}:{port}/ui/ (sign in with CRMHUB_OPERATOR_TOKEN from "
            f"{env_file})"
        )
    click.echo("Ctrl-C stops everything.")
    code = 0
    services = [EmbeddedRedisPart(embedded)] if embedded is not None else []
    try:
        code = Supervisor(
            children, env, services=services, on_hangup=reload_on_hangup(settings, url)
        ).run()
    finally:
        if embedded is not None:
            embedded.stop()
        click.echo("crmhub stopped.")
    sys.exit(code)
