"""`crmhub auth`: credentials that live in the ledger's Redis (OAuth refresh tokens)."""

from __future__ import annotations

import sys

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


@click.group("auth")
def auth_group() -> None:
    """OAuth credentials shared by every worker."""


@auth_group.command("set-refresh-token")
@click.argument("connection")
@json_option
@pass_ctx
@handles_hub_errors
def set_refresh_token(ctx: CliContext, connection: str, as_json: bool) -> None:
    """Install a new refresh token for CONNECTION after re-authorising (read from stdin,
    never echoed). Then `crmhub resume CONNECTION` releases the held deliveries."""
    conn = ctx.config.connections.get(connection)
    if conn is None:
        fail(
            f"no connection named {connection!r} (configured: "
            f"{', '.join(sorted(ctx.config.connections)) or 'none'})",
            EXIT_NOT_FOUND,
        )
    if conn.auth.get("type") != "oauth2":
        fail(
            f"connection {connection!r} does not use oauth2 (auth type "
            f"{conn.auth.get('type')!r}); its credentials come from the environment",
            2,
        )
    if sys.stdin.isatty():
        token = click.prompt("Refresh token", hide_input=True).strip()
    else:
        token = sys.stdin.readline().strip()
    if not token:
        fail("no refresh token given on stdin", 2)
    ctx.ledger.tokens.install_refresh_token(connection, token)
    if as_json:
        emit_json({"connection": connection, "refresh_token": "stored"})
    else:
        click.echo(
            f"{connection}: refresh token stored (the next request refreshes with it). "
            f"If the connection is paused: crmhub resume {connection}"
        )
