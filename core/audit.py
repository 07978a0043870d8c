"""The yearly integration audit (`crmhub audit`, GET /api/v1/audit): every integration
(source -> mapping -> connection, object, direction) with who owns it, why it exists, when it
was last reviewed (the mapping's `integration:` block), its last event and last successful
write, its 30-day counts, and flags:

- `no_owner`: no `integration.owner`;
- `review_overdue`: not reviewed in the last 365 days (or never);
- `unused`: no successful write in 30 days;
- `failing`: its connection is paused, or under 90% of its writes in 30 days succeeded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from core.alerting.model import iso_utc
from core.config.model import Config, MappingConfig
from core.ledger import Ledger
from core.vocabulary import State

WINDOW_SECONDS = 30 * 86400
REVIEW_EVERY_DAYS = 365
FAILING_BELOW = 0.9


def integration_audit(ledger: Ledger, config: Config, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    last_write: dict[str, float] = {}
    for seen in ledger.activity.deliveries_since(now - WINDOW_SECONDS):
        counts[seen.mapping][seen.state] += 1
        if seen.state == State.DELIVERED:
            last_write[seen.mapping] = max(last_write.get(seen.mapping, 0.0), seen.updated_at)
    last_event = {
        name: ledger.activity.source_activity(name, now)[1] for name in sorted(config.sources)
    }
    paused = {name: ledger.pause_info(name) is not None for name in config.connections}
    rows = [
        _row(m, config, counts[m.name], last_event, last_write, paused, now)
        for m in sorted(config.mappings.values(), key=lambda m: m.name)
    ]
    return {"integrations": rows}


def _row(
    m: MappingConfig,
    config: Config,
    counts: dict[str, int],
    last_event: dict[str, float | None],
    last_write: dict[str, float],
    paused: dict[str, bool],
    now: float,
) -> dict[str, Any]:
    info = m.integration
    delivered, dead = counts.get(State.DELIVERED, 0), counts.get(State.DEAD, 0)
    flags = []
    if not info.owner:
        flags.append("no_owner")
    reviewed_at = (
        datetime(info.reviewed.year, info.reviewed.month, info.reviewed.day, tzinfo=UTC)
        if info.reviewed
        else None
    )
    if reviewed_at is None or (now - reviewed_at.timestamp()) > REVIEW_EVERY_DAYS * 86400:
        flags.append("review_overdue")
    if not delivered:
        flags.append("unused")
    if paused.get(m.connection) or (
        delivered + dead and delivered / (delivered + dead) < FAILING_BELOW
    ):
        flags.append("failing")
    source = config.sources.get(m.source)
    two_way = m.two_way is not None or (  # a pair (mappings.<m>.two_way), or an echo
        source is not None and source.echo is not None and (source.echo.connection == m.connection)
    )
    return {
        "mapping": m.name,
        "source": m.source,
        "connection": m.connection,
        "object": m.object,
        "direction": "two_way" if two_way else "source_to_connection",
        "owner": info.owner,
        "purpose": info.purpose,
        "reviewed": info.reviewed.isoformat() if info.reviewed else None,
        "scopes": None,  # not reported by the connectors yet
        "last_event_at": iso_utc(last_event.get(m.source)),
        "last_success_at": iso_utc(last_write.get(m.name)),
        "counts": {
            "window_days": WINDOW_SECONDS // 86400,
            "delivered": delivered,
            "dead": dead,
            "other": sum(counts.values()) - delivered - dead,
        },
        "flags": flags,
    }
