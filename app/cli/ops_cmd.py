"""Operator commands: status, pause/resume, and the dead-letter queue."""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

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

CATEGORIES = ["validation", "mapping", "rejected_by_target", "retries_exhausted"]


def operator() -> str:
    """Who acted, as recorded on the delivery."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cli)"


def _since(value: str | None) -> float | None:
    """`--since` as ISO 8601 or a relative age like 30m, 2h, 7d."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise click.BadParameter("use ISO 8601 (2026-11-28T10:00:00Z) or an age like 30m, "
                                 "2h, 7d") from None


def _known_connection(ctx: CliContext, name: str) -> None:
    if name not in ctx.config.connections:
        fail(f"no connection named {name!r} (configured: "
             f"{', '.join(sorted(ctx.config.connections)) or 'none'})", EXIT_NOT_FOUND)


@click.command()
@json_option
@pass_ctx
@handles_hub_errors
def status(ctx: CliContext, as_json: bool) -> None:
    """Per connection: active or paused, deliveries per state, last success and failure."""
    rows = operations.connection_status(ctx.ledger, ctx.config)
    if as_json:
        emit_json({"connections": rows})
        return
    for row in rows:
        state = (f"PAUSED ({row['pause_reason']} since {row['paused_since']} by "
                 f"{row['paused_by']})" if row["paused"] else "active")
        click.echo(f"{row['name']} [{row['connector']}]: {state}; circuit {row['circuit']}")
        counts = "  ".join(f"{k} {v}" for k, v in row["counts"].items() if v)
        click.echo(f"  deliveries: {counts or 'none yet'}")
        click.echo(f"  last success: {row['last_success_at'] or '-'}   last failure: "
                   f"{row['last_failure_at'] or '-'} {row['last_failure'] or ''}")


@click.command()
@click.argument("connection")
@click.option("--reason", default="manual", show_default=True,
              help="Why (recorded with the pause).")
@json_option
@pass_ctx
@handles_hub_errors
def pause(ctx: CliContext, connection: str, reason: str, as_json: bool) -> None:
    """Hold every delivery for CONNECTION (nothing is lost; resume releases them in order)."""
    _known_connection(ctx, connection)
    newly = ctx.ledger.pause(connection, reason=reason, by=operator(), now=time.time())
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
    _known_connection(ctx, connection)
    released = ctx.ledger.resume(connection, time.time())
    if as_json:
        emit_json({"connection": connection, "paused": False, "released": released})
    else:
        click.echo(f"{connection}: resumed; {released} held deliveries released")


@click.group("dlq")
def dlq_group() -> None:
    """The dead-letter queue: deliveries that need an operator."""


def _filters(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--connection", help="Only this connection.")(func)
    func = click.option("--category", type=click.Choice(CATEGORIES))(func)
    return click.option("--since", help="Dead since (ISO 8601 or 30m/2h/7d).")(func)


@dlq_group.command("list")
@_filters
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_ctx
@handles_hub_errors
def dlq_list(ctx: CliContext, connection: str | None, category: str | None, since: str | None,
             limit: int, as_json: bool) -> None:
    """Dead letters, newest first."""
    if connection:
        _known_connection(ctx, connection)     # a typo must not read as "no dead letters"
    rows = operations.dead_letters(ctx.ledger, connection=connection, category=category,
                                   since=_since(since), limit=limit)
    if as_json:
        emit_json({"dead_letters": rows})
        return
    if not rows:
        click.echo("no dead letters")
    for r in rows:
        click.echo(f"{r['id']}  {r['dead_at']}  {r['connection']:<12} {r['category']:<18} "
                   f"{r['error']}")


@dlq_group.command("show")
@click.argument("delivery_id")
@json_option
@pass_ctx
@handles_hub_errors
def dlq_show(ctx: CliContext, delivery_id: str, as_json: bool) -> None:
    """One delivery: why it died, the mapped record, every attempt and action."""
    delivery = ctx.ledger.delivery(delivery_id, history=True)
    if delivery is None:
        fail(f"no delivery {delivery_id!r} (ids look like dlv_...)", EXIT_NOT_FOUND)
    event = ctx.ledger.event(delivery["event_id"])
    if as_json:
        emit_json(delivery | {"event": event})
        return
    click.echo(json.dumps(delivery, indent=2, default=str))
    if event is not None:
        click.echo("event body:")
        click.echo(json.dumps(event["body"], indent=2))


@dlq_group.command("replay")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter matching filters.")
@_filters
@json_option
@pass_ctx
@handles_hub_errors
def dlq_replay(ctx: CliContext, delivery_ids: tuple[str, ...], replay_all: bool,
               connection: str | None, category: str | None, since: str | None,
               as_json: bool) -> None:
    """Re-run dead letters with the CURRENT mapping (fix the mapping, then replay)."""
    if bool(delivery_ids) == replay_all:
        fail("give delivery ids, or --all with optional filters (not both)", 2)
    if connection:
        _known_connection(ctx, connection)
    ids = list(delivery_ids) or [r["id"] for r in operations.dead_letters(
        ctx.ledger, connection=connection, category=category, since=_since(since),
        limit=100_000)]
    results = operations.replay(ctx.ledger, ctx.config, ids, by=operator(), now=time.time())
    _report(results, "replayed", as_json)


@dlq_group.command("discard")
@click.argument("delivery_ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why (recorded on each delivery).")
@json_option
@pass_ctx
@handles_hub_errors
def dlq_discard(ctx: CliContext, delivery_ids: tuple[str, ...], reason: str,
                as_json: bool) -> None:
    """Give up on dead letters for good, with a reason."""
    results = operations.discard(ctx.ledger, delivery_ids, reason=reason, by=operator(),
                                 now=time.time())
    _report(results, "discarded", as_json)


def _report(results: dict[str, str], verb: str, as_json: bool) -> None:
    done = [i for i, r in results.items() if r == "ok"]
    refused = {i: r for i, r in results.items() if r != "ok"}
    if as_json:
        emit_json({verb: done, "not_dead": refused})
    else:
        click.echo(f"{len(done)} {verb}")
        for delivery_id, state in refused.items():
            click.echo(f"  {delivery_id}: not dead (state {state}); left as is")
    if refused and not done:
        sys.exit(EXIT_NOT_FOUND)
