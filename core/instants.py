"""Source timestamps (`occurred_at`) in the shapes senders use, as epoch milliseconds."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from dateutil import parser as date_parser

#: numbers above this are milliseconds (1973 in ms; year 5138 in seconds)
_MS_THRESHOLD = 100_000_000_000


def instant_ms(value: Any) -> int | None:
    """Epoch seconds or milliseconds (number or numeric text) or ISO 8601 -> ms; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = date_parser.isoparse(text)
            except (ValueError, OverflowError):
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return int(parsed.timestamp() * 1000)
    if isinstance(value, (int, float)):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            return None
        return int(number if abs(number) >= _MS_THRESHOLD else number * 1000)
    return None
