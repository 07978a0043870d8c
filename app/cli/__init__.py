"""The `crmhub` command: serve the hub, and the operator's view of the ledger."""

from __future__ import annotations

import click

from app.cli.alerts_cmd import alerts_group, audit, health
from app.cli.archive_cmd import archive_group
from app.cli.auth_cmd import auth_group
from app.cli.backfill_cmd import backfill_cmd
from app.cli.config_cmd import config_group
from app.cli.dlq_cmd import dlq_group
from app.cli.events_cmd import events_group
from app.cli.fake_cmd import fake
from app.cli.mappings_cmd import mappings_group
from app.cli.ops_cmd import pause, resume, status
from app.cli.pairs_cmd import pairs_group
from app.cli.reload_cmd import reload_cmd
from app.cli.send_test import send_test
from app.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """crmhub: verified webhooks in, mapped writes to your CRMs, nothing lost.

    Reads the CRMHUB_* environment and the YAML at CRMHUB_CONFIG (default ./crmhub.yaml).
    """


main.add_command(serve)
main.add_command(config_group)
main.add_command(reload_cmd)
main.add_command(events_group)
main.add_command(mappings_group)
main.add_command(status)
main.add_command(status, name="connections")
main.add_command(pause)
main.add_command(resume)
main.add_command(dlq_group)
main.add_command(auth_group)
main.add_command(send_test)
main.add_command(fake)
main.add_command(archive_group)
main.add_command(alerts_group)
main.add_command(health)
main.add_command(audit)
main.add_command(backfill_cmd)
main.add_command(pairs_group)
