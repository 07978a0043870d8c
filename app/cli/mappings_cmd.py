"""`crmhub mappings test`: a dry run of a mapping over a payload or the recent events of its
source. Reads the configuration (and, with --replay, the ledger); writes nothing, changes no
ledger state and never calls the target.

Exit codes: 0 when the event maps (with --replay: when no event fails), 1 when it does not
(not routed to the mapping, or a mapping/validation problem), EXIT_NOT_FOUND for an unknown
mapping, and the usual ones of common.py for configuration and Redis problems.
"""

from __future__ import annotations

import difflib
import json
import sys
from typing import IO, Any

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
from connectors.base import Connector
from core.config.model import Config, MappingConfig
from core.dry_run import OPERATIONS, Fetcher, dry_run, event_type_of, replay
from core.splitting import NothingToSplit, split_body
from core.text import escaped

EXIT_DOES_NOT_MAP = 1


@click.group("mappings")
def mappings_group() -> None:
    """Check mappings without writing anything."""


def _value(value: Any, limit: int = 40) -> str:
    text = escaped(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _operation_text(out: dict[str, Any]) -> str:
    match = out["match"]
    key = f"{match['field']} = {match['value']}" if match["field"] else ""
    return {
        "upsert": f"would upsert: find by {key}, update it or create it" if key else "would upsert",
        "create": "would create a new record",
        "update": f"would update the record with {key}, only if it exists"
        if key
        else "would update",
        "skip": "would skip: the event is not routed to this mapping",
        "fail": f"would fail: dead-lettered ({out['category']}), nothing written",
    }[out["operation"]]


def _say(line: str) -> None:
    """Print a line of the dry run: a lone surrogate from the payload (JSON's "\\ud800")
    cannot be printed as is, so it is shown as its escape."""
    click.echo(escaped(line))


def _print_event(out: dict[str, Any]) -> None:
    _say(
        f"mapping    {out['mapping']}: {out['source']} -> {out['connection']} "
        f"{out['object']} ({out['action']})"
    )
    _say(f"event type {out['event_type'] or '-'}")
    if out["routed"]:
        _say("routed     yes")
    else:
        _say("routed     NO")
        for reason in out["not_routed"]:
            _say(f"  - {reason}")
    match = out["match"]
    if match["field"]:
        _say(f"match      {match['field']} = {match['value'] or '(missing)'}")
    fetch = out.get("fetch")
    if fetch:
        what = f"{fetch['connection']} {fetch['object']} {fetch['id'] or '(no id)'}"
        state = (
            f"FAILED: {fetch['error']}"
            if fetch["error"]
            else fetch.get("note") or ("read" if fetch["read"] else "not read")
        )
        _say(f"fetch      {what}: {state}")
    unread = fetch is not None and not fetch["read"] and not fetch["error"]
    if unread:
        _say(
            "operation  unknown until the record is fetched: add --fetch (a read, never a "
            "write), or give the record under `fetched` in the payload"
        )
    else:
        _say(f"operation  {_operation_text(out)}")
    _say("fields")
    width = max((len(f["name"]) for f in out["fields"]), default=0)
    for f in out["fields"]:
        change = (
            _value(f["source_value"])
            if f["source_value"] == f["value"] or not f["write"]
            else f"{_value(f['source_value'])} -> {_value(f['value'])}"
        )
        if f["from"] is None and f["write"]:
            change = _value(f["value"])
        _say(f"  {f['name']:<{width}}  {change:<44} {f['reason']}")
    for related in out.get("related") or []:
        match = related["match"]
        if related["operation"] == "skip":
            _say(f"related    {related['link']}: skipped ({match['field']} is empty: no link)")
        else:
            _say(
                f"related    {related['link']}: find or create {related['object']} by "
                f"{match['field']} = {match['value']}, then link it"
            )
    if out["errors"]:
        _say("errors")
        for p in out["errors"]:
            expected = f" (expected {p['expected']})" if p.get("expected") else ""
            _say(f"  {p['field']}: {p['problem']}{expected}; value {_value(p['value'])}")
    verdict = (
        "unknown without the fetched record" if unread else "maps" if out["ok"] else "does NOT map"
    )
    _say(f"result     {verdict} (dry run: nothing was written)")


def _print_replay(out: dict[str, Any]) -> None:
    if not out["replayed"]:
        _say(f"no recorded events of source {out['source']!r} to replay")
        return
    _say(
        f"replayed the last {out['replayed']} events of source {out['source']} through "
        f"{out['mapping']} (dry run: nothing was written)"
    )
    labels = {
        "upsert": "would upsert",
        "create": "would create",
        "update": "would update",
        "skip": "would skip",
        "fail": "would fail",
    }
    for op in OPERATIONS:
        if out["summary"][op] or op in ("skip", "fail"):
            note = "  (not routed to this mapping)" if op == "skip" and out["summary"][op] else ""
            _say(f"  {labels[op]:<13} {out['summary'][op]:>5}{note}")
    if out["failures"]:
        _say("failures")
        for g in out["failures"]:
            _say(
                f"  {g['count']:>5}  {g['field']}: {g['problem']}  (e.g. {', '.join(g['events'])})"
            )
    if out["skips"]:
        _say("not routed")
        for g in out["skips"]:
            _say(f"  {g['count']:>5}  {g['reason']}")


# -- the command --------------------------------------------------------------------------------


def _mapping(config: Config, name: str) -> MappingConfig:
    mapping = config.mappings.get(name)
    if mapping is None:
        close = difflib.get_close_matches(name, list(config.mappings), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail(
            f"no mapping named {name!r}; {hint}configured: "
            f"{', '.join(sorted(config.mappings)) or 'none'}",
            EXIT_NOT_FOUND,
        )
    return mapping


def _fetcher(ctx: CliContext, config: Config) -> Fetcher:
    """Reads through the fetching connection's connector, with the hub's shared tokens."""
    from connectors.registry import CONNECTORS

    built: dict[str, Connector] = {}

    def fetch(mapping: MappingConfig, record_id: str) -> Any:
        assert mapping.fetch is not None
        name = mapping.fetch.connection
        if name not in built:
            connection = config.connections[name]
            built[name] = CONNECTORS[connection.connector](
                connection,
                ctx.settings.environ,
                tokens=ctx.ledger.tokens,
                memo=ctx.ledger.memo,
            )
        return built[name].fetch(mapping.fetch.object, record_id, mapping.fetch.properties)

    return fetch


def _read_payload(payload: IO[str]) -> Any:
    try:
        return json.load(payload)
    except ValueError as exc:
        raise click.BadParameter(
            f"{payload.name} is not valid JSON: {exc}", param_hint="PAYLOAD"
        ) from None


@mappings_group.command("test")
@click.argument("mapping_name", metavar="MAPPING")
@click.argument(
    "payload", metavar="[PAYLOAD.json]", required=False, type=click.File("r", encoding="utf-8")
)
@click.option(
    "--replay",
    "replay_count",
    type=click.IntRange(1, 10000),
    metavar="N",
    help="Run over the last N recorded events of the mapping's source instead.",
)
@click.option(
    "--event-type",
    help="The payload's event type, when the source reads it from a header (or to try another).",
)
@click.option(
    "--fetch",
    "do_fetch",
    is_flag=True,
    help="For a mapping with `fetch:`, really read the record from its connection (a read, "
    "never a write); without it the fetch is only shown.",
)
@json_option
@pass_ctx
@handles_hub_errors
def test_command(
    ctx: CliContext,
    mapping_name: str,
    payload: IO[str] | None,
    replay_count: int | None,
    event_type: str | None,
    do_fetch: bool,
    as_json: bool,
) -> None:
    """Dry-run MAPPING over PAYLOAD.json (the event body as the source sends it, `-` for
    stdin) or, with --replay N, over recorded events: the match key, the operation, each
    field's source and transformed value and whether it would be written. Nothing is written
    and the target is not called. Exits 0 when the event maps, 1 when it does not."""
    if (payload is None) == (replay_count is None):
        raise click.UsageError("give either PAYLOAD.json or --replay N")
    if replay_count is not None and event_type is not None:
        raise click.UsageError(
            "--event-type applies to a payload; replayed events carry their recorded type"
        )
    config = ctx.config
    mapping = _mapping(config, mapping_name)
    fetcher = _fetcher(ctx, config) if do_fetch else None
    if replay_count is not None:
        out = replay(ctx.ledger, mapping, replay_count, fetcher)
        if as_json:
            emit_json(out)
        else:
            _print_replay(out)
        sys.exit(0 if out["ok"] else EXIT_DOES_NOT_MAP)

    assert payload is not None
    body = _read_payload(payload)
    source = config.sources.get(mapping.source)
    items = body if source is not None and source.batch and isinstance(body, list) else None
    if source is not None and source.split and isinstance(body, dict):
        try:  # the events the receiver would make of it (fetched: kept on each)
            pieces = split_body({k: v for k, v in body.items() if k != "fetched"}, source.split)
        except NothingToSplit:
            pieces = None  # one event already split, or a body to explain as it is
        if pieces is not None and len(pieces) > 1:
            extra = {"fetched": body["fetched"]} if "fetched" in body else {}
            items = [{**piece, **extra} for piece in pieces]
    if items is not None:
        results = []
        for item in items:
            kind, how = event_type_of(source, item, event_type)
            results.append(dry_run(mapping, item, kind, how, fetcher))
        ok = bool(results) and all(r["ok"] for r in results)
        if as_json:
            emit_json({"mapping": mapping.name, "batch": True, "results": results, "ok": ok})
        else:
            for index, r in enumerate(results):
                click.echo(f"--- event [{index}]")
                _print_event(r)
        sys.exit(0 if ok else EXIT_DOES_NOT_MAP)

    kind, how = event_type_of(source, body, event_type)
    out = dry_run(mapping, body, kind, how, fetcher)
    if as_json:
        emit_json(out)
    else:
        _print_event(out)
    sys.exit(0 if out["ok"] else EXIT_DOES_NOT_MAP)
