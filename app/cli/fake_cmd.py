"""`crmhub fake CONNECTOR [OPTIONS]`: a connector's fake on a port of its own, to try a
configuration without the real CRM (what `crmhub serve --demo` runs for its two)."""

from __future__ import annotations

import importlib
import sys

import click

from connectors.fakes import FAKE_MODULES


@click.command(
    "fake", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("connector", type=click.Choice(sorted(FAKE_MODULES)))
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def fake(connector: str, options: tuple[str, ...]) -> None:
    """Run CONNECTOR's fake until Ctrl-C; OPTIONS are the fake's own (`crmhub fake hubspot
    --help`): --port (0 picks a free one), --host, faults and limits through /_control."""
    module = importlib.import_module(FAKE_MODULES[connector])
    sys.exit(module.main(list(options), prog=f"crmhub fake {connector}"))
