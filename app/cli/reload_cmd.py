"""`crmhub reload`: the running hub takes the configuration as it is now, without a restart."""

from __future__ import annotations

import sys
import time

import click

from app.cli.common import (
    CliContext,
    checked_config,
    emit_json,
    handles_hub_errors,
    json_option,
    pass_ctx,
)
from core import reload as config_reload


@click.command("reload")
@json_option
@pass_ctx
@handles_hub_errors
def reload_cmd(ctx: CliContext, as_json: bool) -> None:
    """Make every receiver and worker process use the configuration as it is now.

    Checked first exactly as `crmhub config check` does: with any problem, nothing is
    reloaded (every problem listed, exit 2) and the hub keeps running on what it has.
    Otherwise each process loads it before its next request or delivery (work under way
    finishes as it started); this command returns once that holds. Works the same for
    `crmhub serve` and for separate processes on several hosts (they share the Redis).
    """
    settings = ctx.settings
    config = checked_config(
        settings,
        as_json,
        "; nothing reloaded: the hub keeps running on its current configuration",
    )
    generations = ctx.ledger.generations
    generation = generations.announce()
    # every process checks at least this often before starting work: from now on, what
    # starts uses the new configuration
    time.sleep(config_reload.CHECK_INTERVAL_SECONDS + 0.1)
    refused = generations.refusals(generation)
    if as_json:
        emit_json(
            {"ok": not refused, "file": config.path, "generation": generation, "refused": refused}
        )
    else:
        click.echo(
            f"{config.path}: valid ({len(config.sources)} sources, "
            f"{len(config.connections)} connections, {len(config.mappings)} mappings); "
            f"reloaded as generation {generation}: every receiver and worker process "
            "uses it from its next request or delivery."
        )
        for entry in refused:
            click.echo(f"  {entry['process']} refused it and keeps its configuration:")
            for problem in entry["problems"]:
                click.echo(f"    {problem}")
    if refused:
        sys.exit(1)
