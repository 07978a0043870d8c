"""Operator actions on the ledger, shared by the CLI and the operator API.

Every action that changes a delivery is recorded on it (who, when, why).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from core.config import Config
from core.ledger import Ledger, State
from core.ledger.views import iso_from_ms
from core.mapping import record_key

STATE_NAMES = [s.value for s in State]


def connection_status(ledger: Ledger, config: Config) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(config.connections):
        state = ledger.connection_state(name)
        pause = state["pause"] or {}
        last = state["last"]
        breaker = state["breaker"]
        rows.append({
            "name": name,
            "connector": config.connections[name].connector,
            "paused": bool(state["pause"]),
            "pause_reason": pause.get("reason"),
            "paused_since": iso_from_ms(int(pause["since"] * 1000)) if pause else None,
            "paused_by": pause.get("by"),
            "pause_detail": pause.get("detail") or None,
            "counts": {s: max(0, state["counts"].get(s, 0)) for s in STATE_NAMES},
            "last_success_at": iso_from_ms(last.get("success_at")),
            "last_failure_at": iso_from_ms(last.get("failure_at")),
            "last_failure": last.get("failure") or None,
            "circuit": breaker.get("state", "closed"),
            "cooldown_until": iso_from_ms(state["cooldown_until_ms"]),
        })
    return rows


def dead_letters(ledger: Ledger, *, connection: str | None = None,
                 category: str | None = None, since: float | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    """DEAD deliveries, newest first, filtered (read in pipelined pages)."""
    out: list[dict[str, Any]] = []
    ids = ledger.dead_ids(limit=1_000_000, since=since)
    for start in range(0, len(ids), 500):
        for raw in ledger.raw_deliveries(ids[start:start + 500]):
            if not raw or raw.get("state") != State.DEAD:
                continue
            if (connection and raw["connection"] != connection) or \
                    (category and raw.get("dead_category") != category):
                continue
            out.append({"id": raw["id"], "event_id": raw["event_id"],
                        "connection": raw["connection"], "mapping": raw["mapping"],
                        "category": raw.get("dead_category"), "error": raw.get("dead_error"),
                        "dead_at": iso_from_ms(raw.get("dead_at")),
                        "attempts": int(raw.get("attempts", 0))})
            if len(out) >= limit:
                return out
    return out


def replay(ledger: Ledger, config: Config, ids: Sequence[str], *, by: str,
           now: float) -> dict[str, str]:
    """Re-run DEAD deliveries with the current mapping (their record key recomputed)."""
    items = []
    results: dict[str, str] = {}
    for delivery_id in ids:
        raw = ledger.raw_delivery(delivery_id)
        if not raw:
            results[delivery_id] = "missing"
            continue
        mapping = config.mappings.get(raw["mapping"])
        rk = raw.get("rk") or f"{raw['connection']}:#{delivery_id}"
        if mapping is not None:
            event = ledger.raw_event(raw["event_id"])
            # an unparsable body keeps the old key: the mapping reports it when it runs
            with contextlib.suppress(ValueError):
                rk = record_key(mapping, json.loads(event.get("body", "null")), delivery_id)
        items.append((delivery_id, rk))
    if items:
        results |= ledger.dead_letter_action("replay", items, now=now, by=by)
    return results


def discard(ledger: Ledger, ids: Iterable[str], *, reason: str, by: str,
            now: float) -> dict[str, str]:
    items = [(i, "") for i in ids]
    return ledger.dead_letter_action("discard", items, now=now, by=by, reason=reason)
