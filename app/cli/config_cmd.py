"""`crmhub config check`: every problem in the configuration, with file, line and key."""

from __future__ import annotations

import click

from app.cli.common import (
    CliContext,
    checked_config,
    emit_json,
    json_option,
    pass_ctx,
)


@click.group("config")
def config_group() -> None:
    """Inspect the configuration (CRMHUB_CONFIG, default ./crmhub.yaml)."""


@config_group.command("check")
@json_option
@pass_ctx
def check(ctx: CliContext, as_json: bool) -> None:
    """Validate the YAML, its references, connectors and the secrets it names; every
    problem at once (file:line and key), exit 2 on any."""
    config = checked_config(ctx.settings, as_json)
    summary = {
        "ok": True,
        "file": config.path,
        "sources": sorted(config.sources),
        "connections": sorted(config.connections),
        "mappings": sorted(config.mappings),
    }
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"{config.path}: OK ({len(config.sources)} sources, "
            f"{len(config.connections)} connections, {len(config.mappings)} mappings)"
        )
