"""`crmhub config check`: every problem in the configuration, with file, line and key."""

from __future__ import annotations

import sys

import click

from app.cli.common import (
    EXIT_CONFIG,
    CliContext,
    emit_json,
    json_option,
    pass_ctx,
)
from connectors.validation import validated_config
from core.errors import ConfigError


@click.group("config")
def config_group() -> None:
    """Inspect the configuration (CRMHUB_CONFIG, default ./crmhub.yaml)."""


@config_group.command("check")
@json_option
@pass_ctx
def check(ctx: CliContext, as_json: bool) -> None:
    """Validate the YAML, its references, connectors and the secrets it names; every
    problem at once (file:line and key), exit 2 on any."""
    try:
        config = validated_config(ctx.settings)
    except ConfigError as exc:
        if as_json:
            emit_json({"ok": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            for problem in exc.problems:
                click.echo(str(problem))
            click.echo(f"{len(exc.problems)} problem(s) found.")
        sys.exit(EXIT_CONFIG)
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
