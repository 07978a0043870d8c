"""Edit-and-replay: fix a dead letter's data and run it again, keeping the original.

The edit is either new values for some of the mapping's fields (each written back into the
event's body at the path the field is taken from, so the mapping's transforms and the target's
field specs see it exactly as they would a sender's value), or a whole new event body. It is
checked first by a dry run of the mapping (core/dry_run.py: routing, every field, the field
specs): any problem refuses it with every problem listed, and nothing changes. Accepted, the
edited event is stored beside the original (which is never changed) and the delivery runs
again with it (core/ledger/edit.lua).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from typing import Any

from core.config import Config, MappingConfig
from core.dry_run import dry_run
from core.errors import EditRejected
from core.ids import new_event_id
from core.ledger import Ledger
from core.mapping import record_key
from core.paths import MISSING, get_path, parse_path
from core.vocabulary import OperatorAction, State

#: event hash fields the edited copy keeps from the original
KEPT = ("source", "type", "external_id", "received_at", "occurred_at", "headers")


def _set_path(document: Any, path: str, value: Any) -> None:
    """Write `value` at a dotted path, creating the objects on the way."""
    parts = parse_path(path)
    node = document
    for part, following in itertools.pairwise(parts):
        if isinstance(node, list):
            index = int(part)
            child = node[index] if -len(node) <= index < len(node) else MISSING
        else:
            child = node.get(str(part), MISSING)
        if child is MISSING or not isinstance(child, (dict, list)):
            child = [] if isinstance(following, int) else {}
            if isinstance(node, list):
                raise EditRejected(
                    "cannot write there",
                    [{"field": path, "problem": "no such list element", "value": None}],
                )
            else:
                node[str(part)] = child
        node = child
    if isinstance(node, list) and isinstance(parts[-1], int) and parts[-1] < len(node):
        node[parts[-1]] = value
    elif isinstance(node, dict):
        node[str(parts[-1])] = value
    else:
        raise EditRejected(
            "cannot write there", [{"field": path, "problem": "not an object", "value": None}]
        )


def edited_body(mapping: MappingConfig, body: Any, fields: Mapping[str, Any]) -> Any:
    """The event body with each field's new value written where the field comes from."""
    problems = []
    new = copy.deepcopy(body)
    specs = {f.name: f for f in mapping.fields}
    for name, value in fields.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(
                {
                    "field": name,
                    "problem": f"mapping {mapping.name} has no field {name!r} (its fields: "
                    f"{', '.join(sorted(specs))})",
                    "value": value,
                }
            )
        elif not spec.from_:
            problems.append(
                {
                    "field": name,
                    "problem": "is not taken from the event (a constant): edit event_body",
                    "value": value,
                }
            )
        else:
            # the first path that holds a value is the one the mapping reads
            path = next((p for p in spec.from_ if get_path(new, p) not in (None, "")), None)
            _set_path(new, path or spec.from_[0], value)
    if problems:
        raise EditRejected(f"{len(problems)} problem(s) in the edit", problems)
    return new


def preview(
    ledger: Ledger,
    config: Config,
    delivery_id: str,
    *,
    fields: Mapping[str, Any] | None = None,
    event_body: Any = None,
) -> dict[str, Any] | None:
    """What the edit would do (the mapping's dry run over the edited body) and the body
    itself; None without such a delivery. Raises EditRejected on a bad edit."""
    raw = ledger.raw_delivery(delivery_id)
    if not raw:
        return None
    mapping = config.mappings.get(raw["mapping"])
    if mapping is None:
        raise EditRejected(
            "its mapping is no longer configured",
            [{"field": "(mapping)", "problem": f"no mapping {raw['mapping']!r}", "value": None}],
        )
    event = ledger.raw_event(raw["event_id"])
    if event_body is None:
        try:
            body = json.loads(event.get("body", "null"))
        except ValueError:
            raise EditRejected(
                "the recorded body is not JSON: send event_body",
                [{"field": "(event)", "problem": "unreadable body", "value": None}],
            ) from None
        event_body = edited_body(mapping, body, fields or {})
    result = dry_run(mapping, event_body, event.get("type") or None, "recorded with the event")
    return {
        "delivery": raw,
        "event": event,
        "mapping": mapping,
        "body": event_body,
        "dry_run": result,
        "state": raw.get("state"),
    }


def edit_and_replay(
    ledger: Ledger,
    config: Config,
    delivery_id: str,
    *,
    fields: Mapping[str, Any] | None = None,
    event_body: Any = None,
    by: str,
    via: str,
    now: float,
) -> dict[str, Any] | None:
    """Check the edit (EditRejected with every problem), then keep the edited event and
    replay the delivery with it. None without such a delivery; `result` is 'ok' or what
    prevented it (the delivery's state, or `changed`)."""
    seen = preview(ledger, config, delivery_id, fields=fields, event_body=event_body)
    if seen is None:
        return None
    if seen["state"] != State.DEAD:
        return {"result": seen["state"], "delivery": delivery_id}
    check = seen["dry_run"]
    problems = [*({"field": "(routing)", "problem": p, "value": None} for p in check["not_routed"])]
    problems += check["errors"]
    if problems:
        raise EditRejected(f"the mapping refuses the edit: {len(problems)} problem(s)", problems)
    event = seen["event"]
    edit_id = new_event_id(now)
    body_text = json.dumps(seen["body"], separators=(",", ":"), ensure_ascii=False)
    edited = {name: event[name] for name in KEPT if event.get(name) is not None} | {
        "id": edit_id,
        "body": body_text,
        "state": "recorded",
        "deliveries": delivery_id,
        "edit_of": event.get("id", ""),
        "edited_by": by,
        "edited_at": str(int(now * 1000)),
    }
    note = {
        "at": now,
        "action": OperatorAction.EDIT,
        "by": by,
        "via": via,
        "reason": "",
        "event": edit_id,
        "edit_of": event.get("id", ""),
        "fields": sorted(fields) if fields else None,
    }
    result = ledger.edit_and_replay(
        delivery_id,
        dead_at=seen["delivery"].get("dead_at"),
        record_key=record_key(seen["mapping"], seen["body"], delivery_id),
        event_id=edit_id,
        event_fields=edited,
        note=note,
        now=now,
    )
    return {"result": result, "delivery": delivery_id, "event_id": edit_id, "dry_run": check}
