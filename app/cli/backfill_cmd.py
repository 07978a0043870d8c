"""`crmhub backfill SOURCE`: a polling source's history recorded as events (core/backfill.py),
with a progress bar on stderr and a `--json` summary on stdout."""

from __future__ import annotations

import sys
import time

import click

from app.cli.common import (
    EXIT_NOT_FOUND,
    CliContext,
    checked_config,
    emit_json,
    fail,
    handles_hub_errors,
    json_option,
    pass_ctx,
)
from app.cli.ops_cmd import parse_since
from core.backfill import DEFAULT_MAX_BACKLOG, Progress, backfill
from core.changes import Stamp

BAR_WIDTH = 28


def _stamp(value: str | None) -> Stamp | None:
    seconds = parse_since(value)
    return Stamp.at(int(seconds * 1000)) if seconds is not None else None


class Bar:
    """records, rate and ETA on one line of stderr, redrawn at most 5 times a second (a plain
    line per update when stderr is not a terminal, every 2 s)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = 0.0

    def __call__(self, p: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.shown < (0.2 if self.tty else 2.0):
            return
        self.shown = now
        rate = p.records / p.seconds if p.seconds > 0 else 0.0
        fraction = p.fraction
        eta = p.seconds * (1 - fraction) / fraction if 0 < fraction < 1 else 0.0
        filled = int(BAR_WIDTH * fraction)
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:6.1%}  "
            f"{p.records:,} records ({p.recorded:,} new, {p.duplicates:,} already there), "
            f"{p.pages:,} pages, {rate:,.0f}/s, ETA {eta:,.0f} s"
        )
        if self.tty:
            click.echo("\r" + line + ("\n" if final else ""), err=True, nl=False)
        else:
            click.echo(line, err=True)


@click.command(name="backfill")
@click.argument("source")
@click.option("--since", help="From this time (ISO 8601 or an age: 30d); default: the beginning.")
@click.option("--until", help="Up to this time (ISO 8601 or an age); default: when it starts.")
@click.option("--dry-run", is_flag=True, help="List and count; record nothing, keep no cursor.")
@click.option(
    "--restart", is_flag=True, help="Start over instead of resuming an unfinished backfill."
)
@click.option(
    "--share",
    type=click.FloatRange(0.01, 1.0),
    default=0.5,
    show_default=True,
    help="The most of the connection's rate_limit the backfill's requests take.",
)
@click.option(
    "--max-backlog",
    type=click.IntRange(1),
    default=DEFAULT_MAX_BACKLOG,
    show_default=True,
    help="Record no more while more deliveries than this wait at its connections.",
)
@json_option
@pass_ctx
@handles_hub_errors
def backfill_cmd(
    ctx: CliContext,
    source: str,
    since: str | None,
    until: str | None,
    dry_run: bool,
    restart: bool,
    share: float,
    max_backlog: int,
    as_json: bool,
) -> None:
    """Record SOURCE's records (a polling source) as events through its mappings: its history,
    or --since/--until. Resumes where an interrupted backfill stood; paced so live traffic
    keeps its share of the connection (--share, --max-backlog)."""
    from connectors.registry import CONNECTORS

    config = checked_config(ctx.settings, as_json, "; nothing backfilled")
    spec = config.sources.get(source)
    if spec is None or spec.poll is None:
        polling = sorted(n for n, s in config.sources.items() if s.poll is not None)
        fail(
            f"no polling source named {source!r} (polling sources: "
            f"{', '.join(polling) or 'none'}; a source polls with `poll:`)",
            EXIT_NOT_FOUND,
        )
    connection = config.connections[spec.poll.connection]
    lister = CONNECTORS[connection.connector](
        connection, ctx.settings.environ, tokens=ctx.ledger.tokens, memo=ctx.ledger.memo
    )
    bar = Bar()
    try:
        done = backfill(
            ctx.ledger,
            config,
            source,
            lister,
            since=_stamp(since),
            until=_stamp(until),
            dry_run=dry_run,
            restart=restart,
            share=share,
            max_backlog=max_backlog,
            on_progress=bar,
        )
    finally:
        lister.close()
    bar(done, final=True)
    if as_json:
        emit_json(done.summary())
    else:
        verb = "would record" if dry_run else "recorded"
        click.echo(
            f"{source}: {done.records:,} records in {done.pages:,} pages, {verb} "
            f"{done.recorded:,} (+{done.duplicates:,} already there) in {done.seconds:,.1f} s"
            + (" (resumed)" if done.resumed else "")
        )
    if done.error:
        fail(f"backfill stopped: {done.error}; run it again to resume where it stood", 1)
