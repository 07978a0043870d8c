"""`crmhub alerts` (firing and recent alerts, what was sent where), `crmhub alerts test`,
`crmhub health` and `crmhub audit`: thin edges over core/alerting, core/health.py and
core/audit.py (the operator API calls the same functions)."""

from __future__ import annotations

import sys

import click
import httpx

from app.cli.common import CliContext, emit_json, handles_hub_errors, json_option, pass_ctx
from core.alerting.service import alerts_overview, send_test_alert
from core.alerting.sinks import build_senders
from core.audit import integration_audit
from core.config.durations import parse_duration
from core.errors import DurationSyntaxError
from core.health import health_report, report_text


@click.group("alerts", invoke_without_command=True)
@json_option
@click.option("--limit", default=50, show_default=True, help="At most this many alerts.")
@pass_ctx
@handles_hub_errors
@click.pass_context
def alerts_group(click_ctx: click.Context, ctx: CliContext, as_json: bool, limit: int) -> None:
    """Firing and recent alerts, and what each sink was sent."""
    if click_ctx.invoked_subcommand is not None:
        return
    overview = alerts_overview(ctx.ledger, limit=limit)
    if as_json:
        emit_json(overview)
        return
    if not overview["alerts"]:
        click.echo("no alerts firing, none recently")
    for alert in overview["alerts"]:
        when = alert["resolved_at"] or alert["fired_at"]
        click.echo(f"{alert['status'].upper():9} {alert['kind']:20} {when}  {alert['summary']}")
        command = alert["details"].get("command")
        if command and alert["status"] == "firing":
            click.echo(f"          what to do: {command}")
        for sent in alert["notifications"]:
            state = {True: "sent", False: "NOT SENT", None: "queued"}[sent["ok"]]
            error = f" ({sent['error']})" if sent["error"] else ""
            click.echo(f"          {sent['status']} -> {sent['sink']}: {state}{error}")


@alerts_group.command("test")
@json_option
@pass_ctx
@handles_hub_errors
def alerts_test(ctx: CliContext, as_json: bool) -> None:
    """Send a test alert through every sink now; exit 1 if any refused it."""
    settings = ctx.settings
    with httpx.Client(timeout=10.0) as client:
        senders = build_senders(
            ctx.config.alerts, settings.environ, settings.alert_webhook_url, client
        )
        if not senders:
            click.echo(
                "no alert sinks: configure alerts.sinks in the YAML or set "
                "CRMHUB_ALERT_WEBHOOK_URL",
                err=True,
            )
            sys.exit(1)
        result = send_test_alert(senders, settings.public_url)
    if as_json:
        emit_json(result)
    else:
        for row in result["sinks"]:
            click.echo(f"{row['sink']}: {'ok' if row['ok'] else 'FAILED: ' + row['error']}")
    if not all(row["ok"] for row in result["sinks"]):
        sys.exit(1)


def _window(value: str) -> float:
    try:
        return parse_duration(value)
    except DurationSyntaxError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("health")
@click.option("--since", default="7d", show_default=True, help="The window: 24h, 7d, 30d...")
@json_option
@pass_ctx
@handles_hub_errors
def health(ctx: CliContext, since: str, as_json: bool) -> None:
    """The health check: per source and connection, over a window (default 7 days)."""
    report = health_report(ctx.ledger, ctx.config, _window(since))
    if as_json:
        emit_json(report)
    else:
        click.echo(report_text(report))


@click.command("audit")
@json_option
@click.option("--strict", is_flag=True, help="Exit 1 when any integration is flagged.")
@pass_ctx
@handles_hub_errors
def audit(ctx: CliContext, as_json: bool, strict: bool) -> None:
    """The integration inventory: every source -> mapping -> connection, who owns it, when it
    was reviewed, whether it is used and healthy."""
    result = integration_audit(ctx.ledger, ctx.config)
    if as_json:
        emit_json(result)
    else:
        for row in result["integrations"]:
            flags = ", ".join(row["flags"]) or "ok"
            click.echo(
                f"{row['mapping']}: {row['source']} -> {row['connection']}.{row['object']} "
                f"owner {row['owner'] or '-'}, reviewed {row['reviewed'] or 'never'}: {flags}"
            )
    if strict and any(row["flags"] for row in result["integrations"]):
        sys.exit(1)
