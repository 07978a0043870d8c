"""`crmhub pairs show PAIR RECORD`: what a two-way pair knows of one record (core/ledger/
agreed.py): the twins' ids on each side and, per field and side, the value the side holds,
the stamp of the change that settled it, which side that change came from, and when the hub
last wrote it. What an operator reads when asking why a change did (or did not) sync. Reads
only.

Exit codes: 0 when the pair knows the record, EXIT_NOT_FOUND for an unknown pair or a record
it does not know (never synced, or quiet for longer than its keep_days), and the usual ones
of common.py for configuration and Redis problems.
"""

from __future__ import annotations

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
from core.config.model import Config
from core.config.two_way import pair_mappings, pair_of
from core.ledger import Ledger
from core.ledger.agreed import record_known_view
from core.ledger.views import iso_from_ms
from core.mapping.normalize import normalize_match


@click.group("pairs")
def pairs_group() -> None:
    """Two-way pairs: what they know of a record."""


def _match_value(config: Config, pair: str, record: str) -> str:
    """The record as the pair keys it: the match value normalised as its mappings do."""
    match = pair_mappings(config, pair)[0].match
    if match is None:
        return record
    return normalize_match(
        match.normalize,
        record,
        fold_plus_addressing=match.fold_plus_addressing,
        region=match.region,
    )


def pair_record(ledger: Ledger, config: Config, pair: str, record: str) -> dict[str, Any]:
    """What the pair knows of the record, as `--json` prints it (`known` false when nothing)."""
    key = _match_value(config, pair, record)
    known, ids, forgotten_in = record_known_view(ledger, pair, key)
    fields = []
    for slot in sorted(set(known.values) | set(known.written)):
        side, _, name = slot.partition(":")
        stamp = known.stamps.get(slot)
        wrote = known.written.get(slot)
        fields.append(
            {
                "side": side,
                "field": name,
                "value": known.values.get(slot),
                "stamp": iso_from_ms(stamp) if stamp is not None else None,
                "settled_by": known.origins.get(slot),
                "hub_wrote_at": iso_from_ms(wrote) if wrote is not None else None,
            }
        )
    return {
        "pair": pair,
        "record": key,
        "known": bool(fields or ids),
        "ids": ids,
        "fields": fields,
        "forgotten_in_seconds": forgotten_in,
    }


@pairs_group.command("show")
@click.argument("pair")
@click.argument("record")
@json_option
@pass_ctx
@handles_hub_errors
def show(ctx: CliContext, pair: str, record: str, as_json: bool) -> None:
    """What PAIR knows of RECORD (its match value, e.g. the email both sides share)."""
    config = ctx.config
    pairs = sorted({m.two_way.pair for m in config.mappings.values() if m.two_way})
    members = pair_mappings(config, pair)
    if not members or pair_of(config, members[0]) is None:
        fail(
            f"no two-way pair named {pair!r} in {ctx.settings.config_path} "
            f"(pairs: {', '.join(pairs) or 'none'})",
            EXIT_NOT_FOUND,
        )
    out = pair_record(ctx.ledger, config, pair, record)
    if as_json:
        emit_json(out)
    elif out["known"]:
        _print(out)
    else:
        click.echo(
            f"pair {pair} knows nothing of {out['record']}: never synced, or quiet for "
            "longer than its keep_days (its next change is compared with the twin as it is)"
        )
    if not out["known"]:
        raise SystemExit(EXIT_NOT_FOUND)


def _print(out: dict[str, Any]) -> None:
    click.echo(f"pair {out['pair']}, record {out['record']}")
    for side, ident in sorted(out["ids"].items()):
        click.echo(f"  {side} id: {ident}")
    for f in out["fields"]:
        wrote = f"; the hub wrote it {f['hub_wrote_at']}" if f["hub_wrote_at"] else ""
        click.echo(
            f"  {f['side']}.{f['field']} = {f['value']!r} (changed {f['stamp']} in "
            f"{f['settled_by']}){wrote}"
        )
    if out["forgotten_in_seconds"] is not None:
        click.echo(f"  forgotten in {out['forgotten_in_seconds']} s unless it changes again")
