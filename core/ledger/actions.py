"""The operator action log: who did what, when, to which deliveries, from where (api,
dashboard, cli). The scripts that act write it (operator.lua: log_action) in the same atomic
step as the action; this reads it, newest first, a page at a time."""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from core.errors import BadCursor
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import iso_from_ms, text

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


#: entries kept (about: the stream is trimmed by whole nodes); operator.lua keeps the same
LENGTH = 100_000
#: an entry's fields that every action has; the rest of an entry is its `details`
_COMMON = {
    "at_ms",
    "action",
    "by",
    "via",
    "reason",
    "connection",
    "operation",
    "filter",
    "ids",
    "count",
}


class ActionLog:
    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    def record(self, entry: dict[str, Any], now: float) -> None:
        """An action taken outside the ledger's scripts (an erasure spans Redis and the
        archive), into the same log the scripts write."""
        entry = {**entry, "at_ms": int(now * 1000)}
        with translate_redis_errors():
            self.redis.xadd(
                self.keys.action_log(),
                {"entry": json.dumps(entry, separators=(",", ":"))},
                maxlen=LENGTH,
                approximate=True,
            )

    def page(self, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        if cursor and not _ENTRY_ID.match(cursor):
            raise BadCursor(f"cursor {cursor[:40]!r} is not one a page gave out")
        with translate_redis_errors():
            found = self.redis.xrevrange(
                self.keys.action_log(), max=cursor or "+", min="-", count=limit + 2
            )
        entries = [(text(entry_id), fields or {}) for entry_id, fields in found or []]
        if cursor:
            entries = [e for e in entries if e[0] != cursor]
        page = entries[:limit]
        rows = [_row(entry_id, fields) for entry_id, fields in page]
        return rows, (page[-1][0] if len(entries) > limit else None)


def _row(entry_id: str, fields: dict[Any, Any]) -> dict[str, Any]:
    entry = json.loads(text(fields.get(b"entry", fields.get("entry", "{}"))))
    ids = entry.get("ids") or []
    return {
        "id": entry_id,
        "at": iso_from_ms(entry.get("at_ms")),
        "action": entry.get("action"),
        "by": entry.get("by") or None,
        "via": entry.get("via") or None,
        "reason": entry.get("reason") or None,
        "connection": entry.get("connection"),
        "operation": entry.get("operation"),
        "filter": entry.get("filter"),
        "count": int(entry.get("count") or len(ids)),
        # cjson writes an empty list as {}: a list either way
        "ids": list(ids) if isinstance(ids, list) else [],
        "details": {k: v for k, v in entry.items() if k not in _COMMON} or None,
    }
