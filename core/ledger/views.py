"""Redis hashes -> the JSON shapes the CLI promises (`--json`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.ledger.bodies import unpacked
from core.ledger.keys import FOLD
from core.vocabulary import State


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash as read -> text; an event's compressed body (core/ledger/bodies.py) given back
    as `body`, the text as received."""
    if b"bodyz" in raw or "bodyz" in raw:
        raw = unpacked(raw)
    # an event's hash holds its first delivery too, each field behind FOLD: not the event's
    return {text(k): text(v) for k, v in raw.items() if not text(k).startswith(FOLD)}


def iso_from_ms(value: str | int | None) -> str | None:
    if value in (None, ""):
        return None
    dt = datetime.fromtimestamp(int(float(value)) / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def delivery_view(raw: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": raw["id"],
        "event_id": raw["event_id"],
        "mapping": raw["mapping"],
        "connection": raw["connection"],
        "object": raw.get("object"),
        "state": raw["state"],
        "attempts": int(raw.get("attempts", 0)),
        "record_key": raw.get("rk"),
        "created_at": iso_from_ms(raw.get("created_at")),
        "updated_at": iso_from_ms(raw.get("updated_at")),
    }
    if raw.get("due_at"):
        view["due_at"] = iso_from_ms(raw["due_at"])
    if raw.get("lease_until"):
        view["lease_until"] = iso_from_ms(raw["lease_until"])
    if raw["state"] == State.DEAD:
        view["dead"] = {
            "category": raw.get("dead_category"),
            "error": raw.get("dead_error"),
            "at": iso_from_ms(raw.get("dead_at")),
            "record": _json_or_text(raw.get("dead_record", "")) or None,
        }
    return view


def event_view(raw: dict[str, str], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "source": raw["source"],
        "type": raw.get("type") or None,
        "external_id": raw["external_id"],
        "received_at": iso_from_ms(raw["received_at"]),
        "occurred_at": raw.get("occurred_at") or None,
        "state": raw["state"],
        "headers": json.loads(raw.get("headers") or "{}"),
        "body": _json_or_text(raw.get("body", "")),
        "deliveries": deliveries,
    }
