"""`crmhub events`: what was received, and what became of it, whether still in Redis or
already in the archive (core/archive/lookup.py); and the erasure of a person's events."""

from __future__ import annotations

import json
import sys

import click

from app.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    CliContext,
    emit_json,
    fail,
    handles_hub_errors,
    json_option,
    pass_ctx,
)
from app.cli.ops_cmd import operator, parse_since
from core.archive import EventQuery
from core.archive.erasure import ArchiverBusy, purge_email
from core.archive.lookup import find_event, list_events


@click.group("events")
def events_group() -> None:
    """Recorded webhook events (hot in Redis, or archived)."""


@events_group.command("show")
@click.argument("event_id")
@json_option
@pass_ctx
@handles_hub_errors
def show(ctx: CliContext, event_id: str, as_json: bool) -> None:
    """One event: its headers (signatures redacted), body and deliveries; archived or not."""
    event = find_event(ctx.ledger, ctx.archive, event_id)
    if event is None:
        fail(
            f"no event {event_id!r} in Redis or the archive (ids look like evt_...; see "
            "`crmhub events list`)",
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
    click.echo(
        f"stored    archive (since {event['archived_at']})"
        if event["archived"]
        else "stored    Redis (hot)"
    )
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
@click.option("--type", "type_", help="Only events of this type (customer.created...).")
@click.option(
    "--state",
    help="Only events in this state (recorded, unrouted, echo) or with a delivery "
    "in it (delivered, dead...).",
)
@click.option("--sender-id", help="The sender's own event id (Stripe's evt_..., say).")
@click.option("--email", help="Only events whose body holds this email address.")
@click.option("--since", help="Received at or after (ISO 8601 or 30m/2h/7d).")
@click.option("--until", help="Received at or before (ISO 8601 or 30m/2h/7d ago).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@json_option
@pass_ctx
@handles_hub_errors
def list_cmd(
    ctx: CliContext,
    source: str | None,
    type_: str | None,
    state: str | None,
    sender_id: str | None,
    email: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Events newest first, from Redis and the archive (the last column says which)."""
    query = EventQuery(
        external_id=sender_id,
        source=source,
        type=type_,
        state=state,
        since=parse_since(since),
        until=parse_since(until),
        email=email,
    )
    events = list_events(ctx.ledger, ctx.archive, query, limit=limit, offset=offset)
    if as_json:
        emit_json({"events": events})
        return
    for e in events:
        click.echo(
            f"{e['id']}  {e['received_at']}  {e['source']:<12} {e['type'] or '-':<28} "
            f"{e['state']:<9} {e['deliveries']} deliveries  "
            f"{'archived' if e['archived'] else 'hot'}"
        )


@events_group.command("purge")
@click.option("--email", required=True, help="Erase every event whose body holds it.")
@click.option("--yes", is_flag=True, help="Do not ask first.")
@json_option
@pass_ctx
@handles_hub_errors
def purge(ctx: CliContext, email: str, yes: bool, as_json: bool) -> None:
    """Erase a person's events (found by an email address in the body) from Redis and the
    archive, recorded in the operator log. Events still being delivered are kept (listed):
    run it again once they are delivered."""
    if not yes and not as_json:
        click.confirm(
            f"Erase every event holding {email} from Redis and the archive, for good?",
            abort=True,
        )
    try:
        erasure = purge_email(ctx.ledger, ctx.archive, email, by=operator())
    except ArchiverBusy as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    if as_json:
        emit_json(erasure.as_dict())
    else:
        click.echo(
            f"erased {len(erasure.hot)} event(s) from Redis and {len(erasure.archived)} from "
            "the archive (recorded in the operator log)"
        )
        for event_id, state in erasure.kept.items():
            click.echo(f"kept {event_id}: a delivery is still {state}; purge again once done")
    if erasure.kept:
        sys.exit(1)
