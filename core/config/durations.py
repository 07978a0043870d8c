"""Durations as the YAML writes them: `90s`, `15m`, `6h`, `7d` (or a bare number of seconds).

One parser for every duration key (`expect_activity_within`, `alerts.rules.*`, ...), so each
says the same thing when it is wrong, and the loader names the key.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields

from core.errors import DurationSyntaxError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: Any) -> float:
    """Seconds in `value` (`90s`, `15m`, `6h`, `7d`, `2w`, or a number of seconds); ValueError
    saying what is expected otherwise."""
    if isinstance(value, bool):
        raise DurationSyntaxError(f"expected a duration such as 90s, 15m, 6h or 7d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise DurationSyntaxError(
                f"expected a duration such as 90s, 15m, 6h or 7d, got {value!r}"
            )
        seconds = float(match[1]) * UNITS[match[2]]
    if seconds <= 0:
        raise DurationSyntaxError(f"expected a duration above zero, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 5400 -> `90m`, 604800 -> `7d`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Duration(fields.Field):
    """A marshmallow field for a duration; loads as seconds (float)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        try:
            return parse_duration(value)
        except DurationSyntaxError as exc:
            raise ValidationError(str(exc)) from None
