"""The operator surface's inputs, checked once for the API and the dashboard alike: filters
(the same names as the list's query parameters), limits, times. A bad one is a 400 that
says which parameter, what is wrong and what would do."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from core.config import Config
from core.errors import OperatorRequestError
from core.instants import instant_ms
from core.ledger.dead_pages import DeadQuery
from core.vocabulary import DeadCategory, EventState, State

DEAD_FILTERS = ("connection", "mapping", "category", "since", "q")
EVENT_FILTERS = ("source", "type", "state", "q", "since", "until")
MAX_LIMIT = 500
_AGE = re.compile(r"^(\d{1,7})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def bad(parameter: str, problem: str) -> OperatorRequestError:
    return OperatorRequestError(400, "bad_request", f"{parameter}: {problem}")


def text_param(values: Mapping[str, Any], name: str, max_length: int = 200) -> str | None:
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad(name, "expected text")
    if len(value) > max_length:
        raise bad(name, f"at most {max_length} characters")
    return value


def limit_param(values: Mapping[str, Any], default: int = 50) -> int:
    raw = values.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise bad("limit", f"expected a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad("limit", f"expected a whole number from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def time_param(values: Mapping[str, Any], name: str, now: float | None = None) -> int | None:
    """ISO 8601, epoch seconds, or an age (30m, 2h, 7d) -> epoch ms."""
    raw = text_param(values, name, 40)
    if raw is None:
        return None
    age = _AGE.match(raw)
    if age:
        return int(((now or time.time()) - int(age[1]) * _UNITS[age[2]]) * 1000)
    ms = instant_ms(raw)
    if ms is None or not 0 <= ms < 10**14:
        raise bad(name, "use ISO 8601 (2026-11-28T10:00:00Z) or an age like 30m, 2h, 7d")
    return ms


def _known(name: str, value: str | None, names: Any, what: str) -> str | None:
    if value is not None and value not in names:
        raise bad(
            name, f"no {what} named {value!r} (configured: {', '.join(sorted(names)) or 'none'})"
        )
    return value


def dead_query(values: Mapping[str, Any], config: Config) -> DeadQuery:
    category = text_param(values, "category")
    if category is not None and category not in {c.value for c in DeadCategory}:
        raise bad("category", f"one of {', '.join(c.value for c in DeadCategory)}")
    return DeadQuery(
        connection=_known(
            "connection", text_param(values, "connection"), config.connections, "connection"
        ),
        mapping=_known("mapping", text_param(values, "mapping"), config.mappings, "mapping"),
        category=category,
        since_ms=time_param(values, "since"),
        q=text_param(values, "q"),
    )


def event_filters(values: Mapping[str, Any], config: Config) -> dict[str, Any]:
    state = text_param(values, "state")
    states = {s.value for s in EventState} | {s.value for s in State}
    if state is not None and state not in states:
        raise bad(
            "state", f"an event state or a delivery state: one of {', '.join(sorted(states))}"
        )
    return {
        "source": _known("source", text_param(values, "source"), config.sources, "source"),
        "type": text_param(values, "type"),
        "state": state,
        "q": text_param(values, "q"),
        "since_ms": time_param(values, "since"),
        "until_ms": time_param(values, "until"),
    }


def filter_object(value: Any, config: Config) -> DeadQuery:
    """A bulk action's `filter`: an object with the list's query parameters."""
    if not isinstance(value, dict):
        raise bad("filter", f"expected an object with any of {', '.join(DEAD_FILTERS)}")
    unknown = sorted(set(value) - set(DEAD_FILTERS))
    if unknown:
        raise bad("filter", f"unknown key(s) {', '.join(unknown)}; use {', '.join(DEAD_FILTERS)}")
    return dead_query(value, config)
