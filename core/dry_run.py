"""Dry runs of a mapping: what it would do with an event, or with the recent events of its
source, without writing anything, changing any ledger state or calling the target.

The plain logic behind `crmhub mappings test` (app/cli/mappings_cmd.py prints it); every
result is JSON-ready.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from core.config.model import MappingConfig, Predicate, SourceConfig, WhenSpec
from core.errors import CrmhubError
from core.ledger import Ledger
from core.mapping.engine import evaluate
from core.mapping.record import fetch_id
from core.mapping.transforms import show
from core.paths import MISSING, get_path
from core.routing import matches

#: how many event ids a grouped failure lists
EXAMPLES = 5
OPERATIONS = ("upsert", "create", "update", "skip", "fail")


# -- routing ------------------------------------------------------------------------------------


def event_type_of(
    source: SourceConfig | None, body: Any, given: str | None
) -> tuple[str | None, str]:
    """The event type of a payload, and where it came from (or why it is unknown)."""
    if given is not None:
        return given, "given with --event-type"
    if source is None or source.event_type is None:
        return None, "the source has no event_type"
    if source.event_type.header is not None:
        return None, (
            f"the source reads it from header {source.event_type.header}, which a "
            "payload file does not carry; pass --event-type"
        )
    return source.event_type.resolve_text(body, {}), f"from {source.event_type}"


def _describe(predicate: Predicate) -> str:
    parts = []
    if predicate.exists is not None:
        parts.append("exists" if predicate.exists else "does not exist")
    if predicate.has_equals:
        parts.append(f"equals {json.dumps(predicate.equals, default=str)}")
    if predicate.one_of is not None:
        parts.append(f"is in {json.dumps(list(predicate.one_of), default=str)}")
    return f"{predicate.path} {' and '.join(parts) or 'holds'}"


def route_problems(
    mapping: MappingConfig, event_type: str | None, how: str, body: Any
) -> list[str]:
    """Why this event would not be routed to the mapping (empty: it would be)."""
    problems = []
    types = mapping.when.event_types
    if types is not None and event_type not in types:
        problems.append(
            f"event type {event_type!r} is not one of {', '.join(types)}"
            if event_type is not None
            else f"event type unknown ({how}); the mapping takes {', '.join(types)}"
        )
    for predicate in mapping.when.predicates:
        alone = replace(mapping, when=WhenSpec(event_types=None, predicates=(predicate,)))
        if not matches(alone, None, body):
            value = get_path(body, predicate.path, MISSING)
            shown = "missing" if value is MISSING else json.dumps(value, default=str)
            problems.append(f"when.fields: {_describe(predicate)} does not hold (value: {shown})")
    if not problems and not matches(mapping, event_type, body):  # should not happen
        problems.append("the mapping's `when` filter does not match this event")
    return problems


# -- one event ----------------------------------------------------------------------------------


#: reads the record a `fetch:` mapping fetches: (mapping, record id) -> the record, or raises
Fetcher = Callable[[MappingConfig, str], Any]


def _fetch(
    mapping: MappingConfig, body: Any, fetcher: Fetcher | None
) -> tuple[Any, dict[str, Any] | None]:
    """The body to map (with `fetched` when read) and what the fetch did, for a `fetch:`
    mapping: read with `fetcher` (`crmhub mappings test --fetch`), or only shown."""
    fetch = mapping.fetch
    if fetch is None:
        return body, None
    record_id = fetch_id(mapping, body)
    shown: dict[str, Any] = {
        "connection": fetch.connection,
        "object": fetch.object,
        "id": record_id,
        "properties": list(fetch.properties),
        "read": False,
        "error": None,
    }
    if record_id is None:
        shown["error"] = f"the event has no id to fetch ({' or '.join(fetch.id)} is empty)"
    elif isinstance(body, dict) and "fetched" in body:
        shown["note"] = "given in the payload (`fetched`)"
        shown["read"] = True
    elif fetcher is None:
        shown["note"] = f"not read (--fetch reads it from {fetch.connection})"
    elif isinstance(body, dict):
        try:
            fetched = fetcher(mapping, record_id)
        except CrmhubError as exc:
            shown["error"] = str(exc)
        else:
            shown["read"] = True
            return {**body, "fetched": fetched}, shown
    return body, shown


def dry_run(
    mapping: MappingConfig,
    body: Any,
    event_type: str | None,
    how: str,
    fetcher: Fetcher | None = None,
) -> dict[str, Any]:
    """The dry run of one event: routing, the fetch, match key, each field, the related
    records, every problem."""
    not_routed = route_problems(mapping, event_type, how, body)
    body, fetched = _fetch(mapping, body, fetcher)
    result = evaluate(mapping, body)
    operation = "skip" if not_routed else result.operation
    if fetched is not None and fetched["error"] and not not_routed:
        operation = "fail"
    return {
        "mapping": mapping.name,
        "source": mapping.source,
        "connection": mapping.connection,
        "object": mapping.object,
        "action": mapping.action,
        "event_type": event_type,
        "routed": not not_routed,
        "not_routed": not_routed,
        "operation": operation,
        "match": {
            "field": mapping.match.field if mapping.match else None,
            "value": result.match_value,
        },
        "fields": [f.as_json() for f in result.fields],
        "fetch": fetched,
        "related": [r.as_json() for r in result.related],
        "errors": [dict(p) for p in result.problems],
        "category": result.category or None,
        "ok": not not_routed and result.ok and not (fetched and fetched["error"]),
    }


# -- replay -------------------------------------------------------------------------------------


def _group(
    items: Iterable[tuple[tuple[Any, ...], str]],
) -> list[tuple[tuple[Any, ...], int, list[str]]]:
    groups: dict[tuple[Any, ...], list[str]] = {}
    for key, event_id in items:
        groups.setdefault(key, []).append(event_id)
    return sorted(
        ((k, len(v), v[:EXAMPLES]) for k, v in groups.items()), key=lambda g: (-g[1], str(g[0]))
    )


def _generic(problem: str, value: Any) -> str:
    """The problem without the event's own value, so the same failure groups as one."""
    if value is None or isinstance(value, (dict, list)) or value == "":
        return problem
    for token in {show(value), repr(value), json.dumps(value, default=str)}:
        problem = problem.replace(token, "<value>")
    return problem


def replay(
    ledger: Ledger, mapping: MappingConfig, limit: int, fetcher: Fetcher | None = None
) -> dict[str, Any]:
    """The dry run over the last `limit` accepted events of the mapping's source."""
    counts = dict.fromkeys(OPERATIONS, 0)
    events: list[dict[str, Any]] = []
    failures: list[tuple[tuple[Any, ...], str]] = []
    skips: list[tuple[tuple[Any, ...], str]] = []
    for event_id in ledger.recent_events(mapping.source, limit):
        raw = ledger.raw_event(event_id)
        event_type = raw.get("type") or None
        try:
            body = json.loads(raw["body"])
        except (KeyError, ValueError):
            counts["fail"] += 1
            failures.append((("(event)", "the recorded body is missing or not JSON"), event_id))
            events.append(
                {
                    "event_id": event_id,
                    "type": event_type,
                    "operation": "fail",
                    "match": None,
                    "errors": [{"field": "(event)", "value": None, "problem": "unreadable body"}],
                }
            )
            continue
        out = dry_run(mapping, body, event_type, "not recorded with the event", fetcher)
        counts[out["operation"]] += 1
        if out["operation"] == "skip":
            skips.extend(((reason,), event_id) for reason in out["not_routed"])
        elif out["operation"] == "fail":
            failures.extend(
                ((p["field"], _generic(p["problem"], p["value"])), event_id) for p in out["errors"]
            )
        events.append(
            {
                "event_id": event_id,
                "type": event_type,
                "operation": out["operation"],
                "match": out["match"]["value"],
                "errors": out["errors"],
            }
        )
    return {
        "mapping": mapping.name,
        "source": mapping.source,
        "replayed": len(events),
        "summary": counts,
        "failures": [
            {"field": field, "problem": problem, "count": count, "events": ids}
            for (field, problem), count, ids in _group(failures)
        ],
        "skips": [
            {"reason": reason, "count": count, "events": ids}
            for (reason,), count, ids in _group(skips)
        ],
        "events": events,
        "ok": counts["fail"] == 0,
    }
