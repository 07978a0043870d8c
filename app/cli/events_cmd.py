"""`crmhub events`: what was received, and what became of it."""

from __future__ import annotations

import json

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


@click.group("events")
def events_group() -> None:
    """Recorded webhook events."""


@events_group.command("show")
@click.argument("event_id")
@json_option
@pass_ctx
@handles_hub_errors
def show(ctx: CliContext, event_id: str, as_json: bool) -> None:
    """One event: its headers (signatures redacted), body and deliveries."""
    event = ctx.ledger.event(event_id)
    if event is None:
        fail(
            f"no event {event_id!r} (ids look like evt_...; see `crmhub events list`)",
            EXIT_NOT_FOUND,
        )
    if as_json:
        emit_json(event)
        return
    click.echo(f"event     {event['id']}")
    click.echo(f"source    {event['source']}  type {event['type'] or '-'}")
    click.echo(f"sender id {event['external_id']}")
    click.echo(f"received  {event['received_at']}  occurred {event['occurred_at'] or '-'}")
    click.echo(f"state     {event['state']}")
    click.echo("deliveries:" if event["deliveries"] else "deliveries: none (no mapping matched)")
    for d in event["deliveries"]:
        click.echo(
            f"  {d['id']}  {d['mapping']} -> {d['connection']}  {d['state']}  "
            f"attempts {d['attempts']}"
        )
    click.echo("headers:")
    for name, value in event["headers"].items():
        click.echo(f"  {name}: {value}")
    click.echo("body:")
    click.echo(json.dumps(event["body"], indent=2))


@events_group.command("list")
@click.option("--source", help="Only this source's events.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_ctx
@handles_hub_errors
def list_events(ctx: CliContext, source: str | None, limit: int, as_json: bool) -> None:
    """The most recent events, newest first."""
    events = [
        e
        for e in (ctx.ledger.event(i) for i in ctx.ledger.recent_events(source, limit))
        if e is not None
    ]
    if as_json:
        emit_json(
            {
                "events": [
                    {
                        k: e[k]
                        for k in ("id", "source", "type", "external_id", "received_at", "state")
                    }
                    | {"deliveries": len(e["deliveries"])}
                    for e in events
                ]
            }
        )
        return
    for e in events:
        click.echo(
            f"{e['id']}  {e['received_at']}  {e['source']:<12} {e['type'] or '-':<28} "
            f"{e['state']:<9} {len(e['deliveries'])} deliveries"
        )
