"""What alerting works with: the kinds, a condition observed now, an alert's stored state, and
what the ledger shows the evaluator (Observations). Plain data, JSON-able."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class AlertKind(StrEnum):
    """Each kind fires once when its condition starts and resolves once when it clears."""

    CONNECTION_PAUSED = "connection_paused"
    DEAD_LETTERS = "dead_letters"
    CIRCUIT_OPEN = "circuit_open"
    BACKLOG_AGE = "backlog_age"
    WENT_QUIET = "went_quiet"
    CREDENTIAL_EXPIRING = "credential_expiring"
    ARCHIVE_BEHIND = "archive_behind"  # done events stay in Redis past their hot retention
    TEST = "test"  # `crmhub alerts test`
    HEALTH_REPORT = "health_report"  # the scheduled report (alerts.report)


SEVERITY = {
    AlertKind.CONNECTION_PAUSED: "critical",
    AlertKind.DEAD_LETTERS: "error",
    AlertKind.CIRCUIT_OPEN: "error",
    AlertKind.BACKLOG_AGE: "warning",
    AlertKind.WENT_QUIET: "warning",
    AlertKind.CREDENTIAL_EXPIRING: "warning",
    AlertKind.ARCHIVE_BEHIND: "warning",
    AlertKind.TEST: "info",
    AlertKind.HEALTH_REPORT: "info",
}


class AlertStatus(StrEnum):
    PENDING = "pending"  # observed, not yet for long enough (circuit_open's `after`)
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Condition:
    """A condition that holds now, under its dedup key (one alert per key)."""

    key: str
    kind: AlertKind
    summary: str
    details: dict[str, Any]
    connection: str | None = None
    source: str | None = None
    hold_seconds: float = 0.0  # must be seen this long before it fires


@dataclass
class AlertState:
    """One dedup key's current (or last) episode, as stored in the ledger."""

    key: str
    id: str
    kind: str
    status: str
    summary: str
    details: dict[str, Any]
    connection: str | None = None
    source: str | None = None
    seen_at: float = 0.0  # first observed (this episode)
    fired_at: float | None = None
    resolved_at: float | None = None
    notified_status: str | None = None  # what the sinks were last told (firing/resolved)
    notified_at: float | None = None
    notifications: int = 0  # notices sent for this key, all episodes

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class ConnectionSeen:
    """One connection as the ledger shows it now."""

    paused: dict[str, Any] | None = None
    last_success_at: float | None = None
    last_paused_at: float | None = None  # the latest pause began (kept after a resume)
    last_paused_by: str | None = None
    circuit: str = "closed"
    dead: dict[str, int] = field(default_factory=dict)  # category -> dead letters now
    oldest_waiting_at: float | None = None  # the oldest pending/scheduled delivery
    refresh_failure: dict[str, Any] | None = None  # failing OAuth refreshes


@dataclass(frozen=True)
class DeadSample:
    id: str
    connection: str
    category: str
    error: str


@dataclass(frozen=True)
class Observations:
    now: float
    hub_started_at: float
    sources: dict[str, float | None]  # source -> last event received (s)
    connections: dict[str, ConnectionSeen]
    recent_dead: tuple[DeadSample, ...] = ()  # the newest dead letters, newest first
    archive_lag: float = 0.0  # s the oldest done event in Redis is past its hot retention


def iso_utc(seconds: Any) -> str | None:
    """Epoch seconds as ISO 8601 UTC (`2026-12-03T18:25:00Z`); None for nothing."""
    if seconds in (None, "", 0):
        return None
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(float(seconds), tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
