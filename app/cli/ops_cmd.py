"""Operator commands: status, pause/resume (the dead-letter queue: app/cli/dlq_cmd.py)."""

from __future__ import annotations

import getpass
import socket
import time
from datetime import datetime

import click

from app.cli.common import (
    EXIT_NOT_FOUND,
    CliContext,
    emit_json,
    fail,
    handles_hub_errors,
    json_option,
    pass_ctx,
)
from core import operations
from core.operator_tokens import Via


def operator() -> str:
    """Who acted, as recorded on the delivery."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cli)"


def parse_since(value: str | None) -> float | None:
    """`--since` as ISO 8601 or a relative age like 30m, 2h, 7d."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise click.BadParameter(
            "use ISO 8601 (2026-11-28T10:00:00Z) or an age like 30m, 2h, 7d"
        ) from None


def require_connection(ctx: CliContext, name: str) -> None:
    if name not in ctx.config.connections:
        fail(
            f"no connection named {name!r} (configured: "
            f"{', '.join(sorted(ctx.config.connections)) or 'none'})",
            EXIT_NOT_FOUND,
        )


@click.command()
@json_option
@pass_ctx
@handles_hub_errors
def status(ctx: CliContext, as_json: bool) -> None:
    """Per connection: active or paused, deliveries per state, last success and failure; per
    polling source: its cursor, last poll and last error."""
    rows = operations.connection_status(ctx.ledger, ctx.config)
    polling = operations.polling_status(ctx.ledger, ctx.config)
    if as_json:
        emit_json({"connections": rows, "sources": polling})
        return
    for row in rows:
        state = (
            f"PAUSED ({row['pause_reason']} since {row['paused_since']} by {row['paused_by']})"
            if row["paused"]
            else "active"
        )
        click.echo(f"{row['name']} [{row['connector']}]: {state}; circuit {row['circuit']}")
        counts = "  ".join(f"{k} {v}" for k, v in row["counts"].items() if v)
        click.echo(f"  deliveries: {counts or 'none yet'}")
        click.echo(
            f"  last success: {row['last_success_at'] or '-'}   last failure: "
            f"{row['last_failure_at'] or '-'} {row['last_failure'] or ''}"
        )
    for source in polling:
        click.echo(
            f"source {source['name']} (polls {source['connection']} {source['object']} every "
            f"{source['every_seconds']:g} s): cursor {source['cursor'] or '- (not polled yet)'}"
        )
        click.echo(
            f"  last poll: {source['last_poll_at'] or '-'}   last ok: {source['last_ok_at'] or '-'}"
            f"   records listed: {source['records_listed']}"
        )
        if source["last_error"]:
            click.echo(f"  last error ({source['last_error_at']}): {source['last_error']}")


@click.command()
@click.argument("connection")
@click.option(
    "--reason", default="manual", show_default=True, help="Why (recorded with the pause)."
)
@json_option
@pass_ctx
@handles_hub_errors
def pause(ctx: CliContext, connection: str, reason: str, as_json: bool) -> None:
    """Hold every delivery for CONNECTION (nothing is lost; resume releases them in order)."""
    require_connection(ctx, connection)
    newly = ctx.ledger.pause(connection, reason=reason, by=operator(), now=time.time(), via=Via.CLI)
    if as_json:
        emit_json({"connection": connection, "paused": True, "changed": newly})
    else:
        click.echo(f"{connection}: {'paused' if newly else 'was already paused'}")


@click.command()
@click.argument("connection")
@json_option
@pass_ctx
@handles_hub_errors
def resume(ctx: CliContext, connection: str, as_json: bool) -> None:
    """Lift CONNECTION's pause and release its held deliveries in arrival order."""
    require_connection(ctx, connection)
    released = ctx.ledger.resume(connection, time.time(), by=operator(), via=Via.CLI)
    if as_json:
        emit_json({"connection": connection, "paused": False, "released": released})
    else:
        click.echo(f"{connection}: resumed; {released} held deliveries released")
