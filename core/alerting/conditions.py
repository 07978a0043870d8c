"""Which alert conditions hold now: a pure function of what the ledger shows (Observations),
the configuration and the alerts already firing. Each condition says what to do (`command`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from core.alerting.model import AlertKind, Condition, DeadSample, Observations, iso_utc
from core.config.durations import format_duration
from core.config.model import Config
from core.vocabulary import HUB_ITSELF

#: a pause resumed before any check saw it alerts if it began at most this long ago (an
#: upgraded hub, or one whose scheduler was down for days, does not page for old history)
BRIEF_PAUSE_LOOKBACK = 3600.0


def dedup_key(kind: AlertKind, *parts: str) -> str:
    return ":".join((kind.value, *parts))


def conditions(
    seen: Observations,
    config: Config,
    firing_since: Mapping[str, float],
    last_fired: Mapping[str, float] | None = None,
) -> list[Condition]:
    """Every condition holding at `seen.now`. `firing_since`: dedup key -> fired_at of the
    alerts firing now (a paused connection's alert holds until a delivery succeeds after it
    fired). `last_fired`: dedup key -> when its latest episode fired (firing or resolved): a
    pause that began after that and ended between two checks still fires."""
    last_fired = last_fired or {}
    rules = config.alerts.rules
    found: list[Condition] = []
    for kind, make in (
        (AlertKind.CONNECTION_PAUSED, _paused),
        (AlertKind.DEAD_LETTERS, _dead_letters),
        (AlertKind.CIRCUIT_OPEN, _circuit),
        (AlertKind.BACKLOG_AGE, _backlog),
        (AlertKind.WENT_QUIET, _went_quiet),
        (AlertKind.CREDENTIAL_EXPIRING, _credentials),
        (AlertKind.ARCHIVE_BEHIND, _archive_behind),
    ):
        if rules.on(kind):
            found.extend(make(seen, config, firing_since))
    if rules.on(AlertKind.CONNECTION_PAUSED):
        found.extend(_brief_pauses(seen, config, firing_since, last_fired))
    return found


def _paused(seen: Observations, config: Config, firing: Mapping[str, float]) -> Iterator[Condition]:
    for name, conn in seen.connections.items():
        key = dedup_key(AlertKind.CONNECTION_PAUSED, name)
        pause = conn.paused
        if pause is not None:
            # an operator's pause (`crmhub pause`, whatever reason they gave) alerts only when
            # configured to; the hub's own (a refused credential) always does
            by_operator = pause.get("reason") != "auth" and pause.get("by") not in (
                None,
                "",
                HUB_ITSELF,
            )
            if by_operator and not config.alerts.rules.paused_manual:
                continue
            yield Condition(
                key,
                AlertKind.CONNECTION_PAUSED,
                f"connection {name!r} is paused ({pause.get('reason')}): its events are held, "
                "not lost",
                {
                    "reason": pause.get("reason"),
                    "paused_by": pause.get("by"),
                    "paused_since": iso_utc(pause.get("since")),
                    "error": str(pause.get("detail") or "")[:500],
                    "command": (
                        f"fix the credentials (OAuth: crmhub auth set-refresh-token {name}), "
                        f"then crmhub resume {name}"
                        if pause.get("reason") == "auth"
                        else f"crmhub status; then crmhub resume {name}"
                    ),
                },
                connection=name,
            )
        elif key in firing and (conn.last_success_at or 0) < firing[key]:
            # resumed, but nothing has gone through yet: it resolves on a success
            yield Condition(
                key,
                AlertKind.CONNECTION_PAUSED,
                f"connection {name!r} was resumed; waiting for a delivery to succeed",
                {
                    "reason": "resumed",
                    "command": f"crmhub status; crmhub dlq list --connection {name}",
                },
                connection=name,
            )


def _brief_pauses(
    seen: Observations,
    config: Config,
    firing: Mapping[str, float],
    last_fired: Mapping[str, float],
) -> Iterator[Condition]:
    """A pause that began and was resumed between two checks (an operator quick to fix a
    credential, a busy scheduler): on-call still hears of it once; it resolves with the next
    successful delivery, as any pause's alert does."""
    for name, conn in seen.connections.items():
        key = dedup_key(AlertKind.CONNECTION_PAUSED, name)
        began = conn.last_paused_at
        if conn.paused is not None or key in firing or began is None:
            continue
        if began <= last_fired.get(key, 0.0) or seen.now - began > BRIEF_PAUSE_LOOKBACK:
            continue
        if conn.last_paused_by != HUB_ITSELF and not config.alerts.rules.paused_manual:
            continue
        yield Condition(
            key,
            AlertKind.CONNECTION_PAUSED,
            f"connection {name!r} was paused at {iso_utc(began)} and resumed since; waiting "
            "for a delivery to succeed",
            {
                "reason": "resumed",
                "paused_by": conn.last_paused_by,
                "paused_since": iso_utc(began),
                "command": f"crmhub status; crmhub dlq list --connection {name}",
            },
            connection=name,
        )


def _dead_letters(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    for name, conn in seen.connections.items():
        for category, count in sorted(conn.dead.items()):
            if count <= 0:
                continue
            samples = [
                s for s in seen.recent_dead if s.connection == name and s.category == category
            ]
            top = _top_error(samples)
            yield Condition(
                dedup_key(AlertKind.DEAD_LETTERS, name, category),
                AlertKind.DEAD_LETTERS,
                f"{count} dead letter{'s' if count != 1 else ''} for connection {name!r} "
                f"({category})" + (f": {top[:120]}" if top else ""),
                {
                    "count": count,
                    "category": category,
                    "sample_ids": [s.id for s in samples[:5]],
                    "top_error": top,
                    "command": f"crmhub dlq list --connection {name} --category {category}",
                },
                connection=name,
            )


def _top_error(samples: list[DeadSample]) -> str:
    if not samples:
        return ""
    [(error, _)] = Counter(s.error[:300] for s in samples).most_common(1)
    return error


def _circuit(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    after = config.alerts.rules.circuit_open_after
    for name, conn in seen.connections.items():
        if conn.circuit != "closed":
            yield Condition(
                dedup_key(AlertKind.CIRCUIT_OPEN, name),
                AlertKind.CIRCUIT_OPEN,
                f"connection {name!r}: the circuit is open (the target keeps failing) for over "
                f"{format_duration(after)}; deliveries wait for a probe",
                {
                    "circuit": conn.circuit,
                    "after": format_duration(after),
                    "command": f"crmhub status  # last failure of {name}",
                },
                connection=name,
                hold_seconds=after,
            )


def _backlog(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    limit = config.alerts.rules.backlog_older_than
    for name, conn in seen.connections.items():
        oldest = conn.oldest_waiting_at
        if oldest is not None and seen.now - oldest >= limit:
            yield Condition(
                dedup_key(AlertKind.BACKLOG_AGE, name),
                AlertKind.BACKLOG_AGE,
                f"connection {name!r}: the oldest waiting delivery is older than "
                f"{format_duration(limit)}",
                {
                    "oldest_waiting_since": iso_utc(oldest),
                    "older_than": format_duration(limit),
                    "command": "crmhub status",
                },
                connection=name,
            )


def _archive_behind(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    """Done events should leave Redis once their hot retention passed; an archiver that
    cannot keep up (its database down, too slow) leaves them there, and Redis's memory grows
    until it refuses writes: warn while there is time."""
    limit = config.alerts.rules.archive_behind
    if seen.archive_lag >= limit:
        yield Condition(
            dedup_key(AlertKind.ARCHIVE_BEHIND),
            AlertKind.ARCHIVE_BEHIND,
            f"the archiver is {format_duration(int(seen.archive_lag))} behind: done events stay "
            "in Redis past CRMHUB_HOT_RETENTION_SECONDS and its memory grows",
            {
                "behind": format_duration(int(seen.archive_lag)),
                "threshold": format_duration(limit),
                "command": "crmhub archive status; crmhub archive run --until-caught-up",
            },
        )


def _went_quiet(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    for name, source in config.sources.items():
        if name in seen.sources:
            yield from _quiet(
                seen,
                "source",
                name,
                source.expect_activity_within,
                seen.sources[name],
                "sent no event",
            )
    for name, connection in config.connections.items():
        if name in seen.connections:
            yield from _quiet(
                seen,
                "connection",
                name,
                connection.expect_success_within,
                seen.connections[name].last_success_at,
                "had no successful delivery",
            )


def _quiet(
    seen: Observations,
    what: str,
    name: str,
    within: float | None,
    last: float | None,
    missing: str,
) -> Iterator[Condition]:
    """went_quiet for a source or connection: nothing for `within`, counted from the later
    of the hub's start and its last activity."""
    if within is None or seen.now - max(last or 0.0, seen.hub_started_at) < within:
        return
    yield Condition(
        dedup_key(AlertKind.WENT_QUIET, what, name),
        AlertKind.WENT_QUIET,
        f"{what} {name!r} {missing} for over {format_duration(within)}",
        {
            "last_event_at" if what == "source" else "last_success_at": iso_utc(last),
            "expected_within": format_duration(within),
            "command": f"crmhub events list --source {name}"
            if what == "source"
            else "crmhub status",
        },
        source=name if what == "source" else None,
        connection=name if what == "connection" else None,
    )


def _credentials(
    seen: Observations, config: Config, firing: Mapping[str, float]
) -> Iterator[Condition]:
    needed = config.alerts.rules.credential_failures
    for name, conn in seen.connections.items():
        failing = conn.refresh_failure
        if not failing or int(failing.get("failures", 0)) < needed:
            continue
        if float(failing.get("first_at", 0)) >= float(failing.get("token_expires_at", 0)):
            continue  # the token had already expired: that is a pause, not a warning
        yield Condition(
            dedup_key(AlertKind.CREDENTIAL_EXPIRING, name),
            AlertKind.CREDENTIAL_EXPIRING,
            f"connection {name!r}: refreshing the OAuth token keeps failing; the current token "
            f"expires at {iso_utc(failing.get('token_expires_at'))}, then the connection pauses",
            {
                "failures": int(failing.get("failures", 0)),
                "error": str(failing.get("error", ""))[:500],
                "token_expires_at": iso_utc(failing.get("token_expires_at")),
                "command": f"re-authorise, then crmhub auth set-refresh-token {name}",
            },
            connection=name,
        )
