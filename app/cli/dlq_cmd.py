"""`crmhub dlq`: list (a page at a time), show, replay (reporting the outcome), discard."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
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
from app.cli.ops_cmd import operator, parse_since, require_connection
from core import operations
from core.vocabulary import DeadCategory, State

CATEGORIES = [category.value for category in DeadCategory]


@click.group("dlq")
def dlq_group() -> None:
    """The dead-letter queue: deliveries that need an operator."""


def _filters(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--connection", help="Only this connection.")(func)
    func = click.option("--category", type=click.Choice(CATEGORIES))(func)
    return click.option("--since", help="Dead since (ISO 8601 or 30m/2h/7d).")(func)


def _which(
    ctx: CliContext, connection: str | None, category: str | None, since: str | None
) -> operations.DeadLetterFilter:
    if connection:
        require_connection(ctx, connection)  # a typo must not read as "no dead letters"
    return operations.DeadLetterFilter(
        connection=connection,
        category=DeadCategory(category) if category else None,
        since=parse_since(since),
    )


def _filter_args(connection: str | None, category: str | None, since: str | None) -> str:
    """The filters as they were typed, to repeat them in a suggested command."""
    given = [("--connection", connection), ("--category", category), ("--since", since)]
    return "".join(f" {flag} {value}" for flag, value in given if value)


@dlq_group.command("list")
@_filters
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many rows.",
)
@click.option(
    "--offset",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Skip this many (newest first): the next page starts at offset + limit.",
)
@json_option
@pass_ctx
@handles_hub_errors
def dlq_list(
    ctx: CliContext,
    connection: str | None,
    category: str | None,
    since: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Dead letters, newest first, a page at a time (says when there are more)."""
    rows, total = operations.dead_letter_page(
        ctx.ledger, _which(ctx, connection, category, since), limit=limit, offset=offset
    )
    more = max(0, total - offset - len(rows))
    following = offset + len(rows)
    if as_json:
        emit_json(
            {
                "dead_letters": rows,
                "total": total,
                "offset": offset,
                "next_offset": following if more else None,
            }
        )
        return
    if not rows:
        click.echo(
            "no dead letters"
            if total == 0
            else f"no dead letters past offset {offset} ({total} in all)"
        )
    for r in rows:
        click.echo(
            f"{r['id']}  {r['dead_at']}  {r['connection']:<12} {r['category']:<18} {r['error']}"
        )
    if more:
        click.echo(
            f"... {more} more (showing {offset + 1}-{following} of {total}); next page: "
            f"crmhub dlq list{_filter_args(connection, category, since)} "
            f"--offset {following}" + (f" --limit {limit}" if limit != 100 else "")
        )


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


def _chosen(
    ctx: CliContext,
    delivery_ids: tuple[str, ...],
    every: bool,
    connection: str | None,
    category: str | None,
    since: str | None,
) -> list[str]:
    """The ids given, or with --all every dead letter the filters match (never both)."""
    if bool(delivery_ids) == every:
        fail("give delivery ids, or --all with optional filters (not both)", 2)
    if delivery_ids and (connection or category or since):
        fail(
            "--connection, --category and --since select dead letters for --all; with ids "
            "given, leave them out",
            2,
        )
    if delivery_ids:
        return list(delivery_ids)
    return operations.dead_letter_ids(ctx.ledger, _which(ctx, connection, category, since))


@dlq_group.command("replay")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter matching filters.")
@_filters
@click.option(
    "--wait",
    "wait_seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Seconds to wait for the outcome (delivered / dead again / still pending).",
)
@click.option("--no-wait", is_flag=True, help="Queue them and return at once.")
@json_option
@pass_ctx
@handles_hub_errors
def dlq_replay(
    ctx: CliContext,
    delivery_ids: tuple[str, ...],
    replay_all: bool,
    connection: str | None,
    category: str | None,
    since: str | None,
    wait_seconds: float,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Re-run dead letters with the CURRENT mapping (fix, check, reload, then replay).

    Waits a moment (--wait) and reports what became of them: delivered, dead again (and
    why), still pending. Exit 1 if any died again.
    """
    ids = _chosen(ctx, delivery_ids, replay_all, connection, category, since)
    results = operations.replay(ctx.ledger, ctx.config, ids, by=operator(), now=time.time())
    done = [i for i, r in results.items() if r == "ok"]
    result = None
    if done and not no_wait:
        result = operations.await_outcome(ctx.ledger, done, timeout=wait_seconds)
    _report(results, "replayed", as_json, outcome=result, waiting=not no_wait)
    if result is not None and result["counts"][State.DEAD]:
        sys.exit(1)


@dlq_group.command("discard")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "discard_all", is_flag=True, help="Every dead letter matching filters.")
@_filters
@click.option("--reason", required=True, help="Why (recorded on each delivery).")
@click.option("--yes", is_flag=True, help="With --all: do not ask for confirmation.")
@json_option
@pass_ctx
@handles_hub_errors
def dlq_discard(
    ctx: CliContext,
    delivery_ids: tuple[str, ...],
    discard_all: bool,
    connection: str | None,
    category: str | None,
    since: str | None,
    reason: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Give up on dead letters for good, with a reason: IDs, or --all [filters]."""
    ids = _chosen(ctx, delivery_ids, discard_all, connection, category, since)
    if discard_all and ids and not yes:
        # discarding is final: say how many and which, and ask (stdin not a terminal: --yes)
        which = _filter_args(connection, category, since).strip() or "no filters"
        click.confirm(
            f"Discard {len(ids)} dead letter(s) for good ({which})?", abort=True, err=True
        )
    results = operations.discard(ctx.ledger, ids, reason=reason, by=operator(), now=time.time())
    _report(results, "discarded", as_json)


def _outcome_text(result: dict[str, Any]) -> list[str]:
    counts = result["counts"]
    parts = [
        f"{counts[State.DELIVERED]} delivered",
        f"{counts[State.DEAD]} dead again",
        f"{counts[State.PENDING]} still pending",
    ]
    extra = {
        State.SCHEDULED: "retrying later (a transient failure)",
        State.HELD: "held (their connection is paused)",
        State.SUPERSEDED: "superseded (a newer event was already written)",
    }
    parts += [f"{counts[state]} {text}" for state, text in extra.items() if counts.get(state)]
    parts += [
        f"{n} {state}"
        for state, n in counts.items()
        if state not in operations.OUTCOME_STATES and n
    ]
    lines = [", ".join(parts) + f" (after {result['waited_seconds']:g} s)"]
    for reason in result["dead_reasons"][:3]:
        lines.append(f"  dead again: {reason['count']} {reason['category']}: {reason['error']}")
    if counts[State.DEAD]:
        lines.append("  see `crmhub dlq list` and `crmhub dlq show ID`")
    if not result["settled"]:
        lines.append(
            "  still pending ones are queued and go out when a worker takes them "
            "(is the worker running? `crmhub status`)"
        )
    return lines


def _report(
    results: dict[str, str],
    verb: str,
    as_json: bool,
    outcome: dict[str, Any] | None = None,
    waiting: bool = False,
) -> None:
    done = [i for i, r in results.items() if r == "ok"]
    refused = {i: r for i, r in results.items() if r != "ok"}
    if as_json:
        payload: dict[str, Any] = {verb: done, "not_dead": refused}
        if verb == "replayed":
            payload["outcome"] = outcome
        emit_json(payload)
    else:
        if verb != "replayed" or not done:
            click.echo(f"{len(done)} {verb}")
        elif outcome is None:
            click.echo(
                f"{len(done)} {verb}: queued for delivery"
                + ("" if waiting else " (not waited for; `crmhub status` shows progress)")
            )
        else:
            lines = _outcome_text(outcome)
            click.echo(f"{len(done)} {verb}: {lines[0]}")
            for line in lines[1:]:
                click.echo(line)
        for delivery_id, state in refused.items():
            click.echo(f"  {delivery_id}: not dead (state {state}); left as is")
    if refused and not done:
        sys.exit(EXIT_NOT_FOUND)
