"""Echo suppression for two-way sync.

When the hub writes to a target that is also a source (HubSpot -> hub -> HubSpot), the target
announces the hub's own write as a change. The worker remembers what it wrote (record id and
match value, field values, for the source's `echo.window_seconds`); an inbound event that only
repeats those values is accepted with state `echo` and routed nowhere, so it is not synced back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.config.model import Config, EchoSpec
from core.mapping.record import first_value


def canonical(value: Any) -> str:
    """One text form for a value whether it was sent as 5, "5", true or "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "" if value is None else str(value).strip()


def record_ref(connection: str, obj: str, record: str) -> str:
    return f"{connection}:{obj}:{record}"


def inbound(spec: EchoSpec, body: Any) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """(record ref, ((field, value), ...)) this event claims, or None if it names none."""
    record = first_value(body, spec.record)
    if record is None or isinstance(record, (dict, list)):
        return None
    if spec.fields:
        values = first_value(body, spec.fields)
        if not isinstance(values, Mapping) or not values:
            return None
        pairs = tuple(sorted((str(k), canonical(v)) for k, v in values.items()))
    else:
        name = first_value(body, spec.field)
        if name is None:
            return None
        pairs = ((str(name), canonical(first_value(body, spec.value))),)
    return record_ref(spec.connection, spec.object, canonical(record)), pairs


def echo_window(config: Config, connection: str, obj: str) -> int | None:
    """How long to remember writes to (connection, object), if any source echoes them."""
    windows = [
        s.echo.window_seconds
        for s in config.sources.values()
        if s.echo and s.echo.connection == connection and s.echo.object == obj
    ]
    return max(windows) if windows else None
