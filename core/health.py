"""The weekly health check (`crmhub health`, the scheduled report `alerts.report`, and the
operator API): per source, events received and the last one; per connection, delivered, dead,
success rate, receipt-to-write latency (p50, p95), the last success and the alerts fired."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

from core.alerting.model import AlertStatus, iso_utc
from core.config.durations import format_duration
from core.config.model import Config
from core.ledger import Ledger
from core.vocabulary import State


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def health_report(
    ledger: Ledger, config: Config, since_seconds: float = 7 * 86400, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    since = now - since_seconds
    sources = []
    for name in sorted(config.sources):
        count, last = ledger.activity.source_activity(name, since)
        quiet = config.sources[name].expect_activity_within
        sources.append(
            {
                "source": name,
                "events_received": count,
                "last_received_at": iso_utc(last),
                "expect_activity_within": format_duration(quiet) if quiet else None,
                "quiet": bool(quiet and (last is None or now - last >= quiet)),
            }
        )
    delivered: dict[str, int] = defaultdict(int)
    dead: dict[str, int] = defaultdict(int)
    latencies: dict[str, list[float]] = defaultdict(list)
    for seen in ledger.activity.deliveries_since(since):
        if seen.state == State.DELIVERED:
            delivered[seen.connection] += 1
            latencies[seen.connection].append(max(0.0, seen.updated_at - seen.created_at))
        elif seen.state in (State.DEAD, State.DISCARDED):  # died (and maybe given up on)
            dead[seen.connection] += 1
    fired = _alerts_fired(ledger, since)
    connections = []
    for name in sorted(config.connections):
        state = ledger.connection_state(name)
        done = delivered[name] + dead[name]
        p50, p95 = percentile(latencies[name], 50), percentile(latencies[name], 95)
        quiet = config.connections[name].expect_success_within
        success = state["last"].get("success_at")
        connections.append(
            {
                "connection": name,
                "delivered": delivered[name],
                "dead": dead[name],
                "success_rate": round(delivered[name] / done, 4) if done else None,
                "latency_p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
                "latency_p95_ms": round(p95 * 1000, 1) if p95 is not None else None,
                "last_success_at": iso_utc(float(success) / 1000) if success else None,
                "paused": state["pause"] is not None,
                "alerts_fired": fired.get(name, 0),
                "expect_success_within": format_duration(quiet) if quiet else None,
            }
        )
    return {
        "since": iso_utc(since),
        "until": iso_utc(now),
        "window": format_duration(since_seconds),
        "sources": sources,
        "connections": connections,
        "went_quiet": [s["source"] for s in sources if s["quiet"]],
    }


def _alerts_fired(ledger: Ledger, since: float) -> dict[str, int]:
    """Alerts fired since `since`, per connection (every episode counted once)."""
    episodes = {
        s.id: s
        for s in [*ledger.alerting.history(500), *ledger.alerting.states().values()]
        if s.status != AlertStatus.PENDING and (s.fired_at or 0) >= since
    }
    counts: dict[str, int] = defaultdict(int)
    for state in episodes.values():
        if state.connection:
            counts[state.connection] += 1
    return dict(counts)


def report_text(report: dict[str, Any]) -> str:
    """The report for a person (the CLI, Slack, email)."""
    lines = [f"crmhub health, {report['window']} ({report['since']} .. {report['until']})"]
    for s in report["sources"]:
        flag = "  QUIET" if s["quiet"] else ""
        lines.append(
            f"  source {s['source']}: {s['events_received']} events, last "
            f"{s['last_received_at'] or 'never'}{flag}"
        )
    for c in report["connections"]:
        rate = f"{c['success_rate']:.1%}" if c["success_rate"] is not None else "-"
        lines.append(
            f"  connection {c['connection']}: {c['delivered']} delivered, {c['dead']} dead "
            f"(success {rate}); latency p50 {c['latency_p50_ms'] or '-'} ms, p95 "
            f"{c['latency_p95_ms'] or '-'} ms; last success {c['last_success_at'] or 'never'}; "
            f"{c['alerts_fired']} alert(s){'; PAUSED' if c['paused'] else ''}"
        )
    return "\n".join(lines)
