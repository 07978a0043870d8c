"""`crmhub archive`: the archive's schema, a pass of the archiver by hand, its figures."""

from __future__ import annotations

import time

import click

from app.cli.common import CliContext, emit_json, handles_hub_errors, json_option, pass_ctx
from core.archive import Database
from core.archive.migrations import LATEST, migrate, schema_version
from core.archive.mover import archive_lag_seconds, archive_pass, oldest_done_age_seconds


@click.group("archive")
def archive_group() -> None:
    """The archive: where events done for good go once CRMHUB_HOT_RETENTION_SECONDS passed."""


@archive_group.command("migrate")
@json_option
@pass_ctx
@handles_hub_errors
def migrate_cmd(ctx: CliContext, as_json: bool) -> None:
    """Bring the archive's schema up to date (every process also does at start)."""
    db = Database(ctx.settings.archive_location)
    try:
        applied = migrate(db)
        version = schema_version(db)
    finally:
        db.close()
    if as_json:
        emit_json(
            {
                "archive": db.describe(),
                "applied": [m.version for m in applied],
                "version": version,
            }
        )
        return
    for m in applied:
        click.echo(f"applied {m.version}: {m.description}")
    click.echo(f"{db.describe()}: schema version {version} (latest {LATEST})")


@archive_group.command("run")
@click.option("--until-caught-up", is_flag=True, help="Repeat passes until nothing more is due.")
@json_option
@pass_ctx
@handles_hub_errors
def run_cmd(ctx: CliContext, until_caught_up: bool, as_json: bool) -> None:
    """One archiver pass now (the scheduler runs one every 10 s): move what is due out of
    Redis, then delete what is past the archive's retention."""
    totals = {"moved": 0, "written": 0, "expired": 0}
    while True:
        result = archive_pass(ctx.ledger, ctx.archive, ctx.settings)
        for key in totals:
            totals[key] += getattr(result, key)
        if not until_caught_up or (result.caught_up and not result.skipped):
            break
        if result.skipped:
            time.sleep(0.5)  # another archiver holds the lock: wait for it
    if as_json:
        emit_json(totals | {"skipped": result.skipped})
    elif result.skipped:
        click.echo("another archiver is running (its lock is held); nothing done")
    else:
        click.echo(
            f"moved {totals['moved']} event(s) to the archive ({totals['written']} new there), "
            f"deleted {totals['expired']} past retention"
        )


@archive_group.command("status")
@json_option
@pass_ctx
@handles_hub_errors
def status_cmd(ctx: CliContext, as_json: bool) -> None:
    """Where the archive is, how many events it holds, and how far behind it is."""
    figures = {
        "archive": ctx.archive.db.describe(),
        "archived_events": ctx.archive.count(),
        "done_in_redis": ctx.ledger.done_count(),
        "oldest_done_age_seconds": round(oldest_done_age_seconds(ctx.ledger), 1),
        "lag_seconds": round(
            archive_lag_seconds(ctx.ledger, ctx.settings.hot_retention_seconds), 1
        ),
        "hot_retention_seconds": ctx.settings.hot_retention_seconds,
        "archive_retention_days": ctx.settings.archive_retention_days,
    }
    if as_json:
        emit_json(figures)
        return
    for key, value in figures.items():
        click.echo(f"{key:<26} {value}")
