"""The YAML's `alerts:` block (sinks, rules, the scheduled report) and each mapping's
`integration:` block (for `crmhub audit`): their shape (marshmallow) and model objects.

Kept apart from core/config/schema.py: the rest of the document does not depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.config.durations import Duration

ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="not an environment variable name")
SINK_TYPES = ("webhook", "pagerduty", "slack", "email")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_AT = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)\w*\s+)?([01]?\d|2[0-3]):([0-5]\d)$", re.I)

#: the `*_env` keys a sink may name (each holds a secret; checked at start like the others)
SINK_SECRET_KEYS = ("url_env", "routing_key_env", "username_env", "password_env")


class SinkSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(
            SINK_TYPES, error="unknown sink type {input!r}; expected {choices}"
        ),
    )
    url_env = fields.String(validate=ENV_NAME)  # webhook, slack
    routing_key_env = fields.String(validate=ENV_NAME)  # pagerduty
    events_url = fields.Url(require_tld=False, schemes={"http", "https"})  # pagerduty
    host = fields.String()  # email
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    starttls = fields.Boolean()
    username_env = fields.String(validate=ENV_NAME)
    password_env = fields.String(validate=ENV_NAME)
    sender = fields.String(data_key="from")
    to = fields.List(fields.String(), validate=validate.Length(min=1))
    timeout_seconds = fields.Float(validate=validate.Range(min=0.1, max=60))

    REQUIRED = {
        "webhook": ("url_env",),
        "slack": ("url_env",),
        "pagerduty": ("routing_key_env",),
        "email": ("host", "sender", "to"),
    }

    @validates_schema
    def _required_for_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("type", "")
        missing = [k for k in self.REQUIRED.get(kind, ()) if not data.get(k)]
        if missing:
            raise ValidationError(
                {
                    ("from" if k == "sender" else k): [
                        f"required for {'an' if kind[:1] in 'aeiou' else 'a'} {kind} sink"
                    ]
                    for k in missing
                }
            )


class KindRuleSchema(Schema):
    """One alert kind's rule: `enabled`, plus the kind's own threshold."""

    enabled = fields.Boolean()
    after = Duration()  # circuit_open: open at least this long
    older_than = Duration()  # backlog_age: the oldest waiting delivery is older than this
    manual = fields.Boolean()  # connection_paused: also for pauses an operator made
    failures = fields.Integer(validate=validate.Range(min=1))  # credential_expiring
    behind = Duration()  # archive_behind: done events overdue for the archive this long


class RulesSchema(Schema):
    connection_paused = fields.Nested(KindRuleSchema)
    dead_letters = fields.Nested(KindRuleSchema)
    circuit_open = fields.Nested(KindRuleSchema)
    backlog_age = fields.Nested(KindRuleSchema)
    went_quiet = fields.Nested(KindRuleSchema)
    credential_expiring = fields.Nested(KindRuleSchema)
    archive_behind = fields.Nested(KindRuleSchema)
    renotify_every = Duration()
    flap_window = Duration()


def _weekly_at(value: str) -> None:
    if not _AT.match(value.strip()):
        raise ValidationError(f'expected "HH:MM" or "Mon 09:00", got {value!r}')


def _timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {value!r} (an IANA name: Europe/London)"
        ) from None


class ReportSchema(Schema):
    every = Duration(required=True)
    at = fields.String(validate=_weekly_at)
    timezone = fields.String(validate=_timezone)
    sinks = fields.List(fields.String())
    since = Duration()


class AlertsSchema(Schema):
    sinks = fields.Dict(keys=fields.String(), values=fields.Nested(SinkSchema))
    rules = fields.Nested(RulesSchema)
    report = fields.Nested(ReportSchema)


class IntegrationSchema(Schema):
    """`mappings.<m>.integration`: who owns this integration and why it exists."""

    owner = fields.String()
    purpose = fields.String()
    reviewed = fields.Date()  # YYYY-MM-DD


# the model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SinkConfig:
    name: str
    type: str
    url_env: str | None = None
    routing_key_env: str | None = None
    events_url: str = PAGERDUTY_EVENTS_URL
    host: str | None = None
    port: int | None = None
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class AlertRules:
    """Thresholds, each with its default (README: the alerts configuration)."""

    enabled: Mapping[str, bool] = field(default_factory=dict)  # kind -> False to switch off
    circuit_open_after: float = 300.0
    backlog_older_than: float = 900.0
    paused_manual: bool = False
    credential_failures: int = 2
    archive_behind: float = 3600.0
    renotify_every: float = 4 * 3600.0
    flap_window: float = 900.0

    def on(self, kind: str) -> bool:
        return self.enabled.get(kind, True)


@dataclass(frozen=True)
class ReportSchedule:
    every: float
    weekday: int | None = None  # 0 = Monday
    hour: int = 9
    minute: int = 0
    timezone: str = "UTC"
    sinks: tuple[str, ...] = ()  # empty: every sink
    since: float | None = None  # None: `every`


@dataclass(frozen=True)
class AlertsConfig:
    sinks: Mapping[str, SinkConfig] = field(default_factory=dict)
    rules: AlertRules = field(default_factory=AlertRules)
    report: ReportSchedule | None = None


@dataclass(frozen=True)
class IntegrationInfo:
    owner: str | None = None
    purpose: str | None = None
    reviewed: date | None = None


def build_alerts(spec: Mapping[str, Any]) -> AlertsConfig:
    sinks = {name: _sink(name, s) for name, s in (spec.get("sinks") or {}).items()}
    rules_spec = spec.get("rules") or {}
    kinds = {k: v for k, v in rules_spec.items() if isinstance(v, dict)}
    defaults = AlertRules()
    rules = AlertRules(
        enabled={k: bool(v["enabled"]) for k, v in kinds.items() if "enabled" in v},
        circuit_open_after=kinds.get("circuit_open", {}).get("after", defaults.circuit_open_after),
        backlog_older_than=kinds.get("backlog_age", {}).get(
            "older_than", defaults.backlog_older_than
        ),
        paused_manual=kinds.get("connection_paused", {}).get("manual", defaults.paused_manual),
        credential_failures=kinds.get("credential_expiring", {}).get(
            "failures", defaults.credential_failures
        ),
        archive_behind=kinds.get("archive_behind", {}).get("behind", defaults.archive_behind),
        renotify_every=rules_spec.get("renotify_every", defaults.renotify_every),
        flap_window=rules_spec.get("flap_window", defaults.flap_window),
    )
    report = None
    if spec.get("report"):
        r = spec["report"]
        match = _AT.match(str(r.get("at", "09:00")).strip())
        assert match is not None  # validated by the schema
        report = ReportSchedule(
            every=r["every"],
            weekday=WEEKDAYS.index(match[1][:3].lower()) if match[1] else None,
            hour=int(match[2]),
            minute=int(match[3]),
            timezone=r.get("timezone", "UTC"),
            sinks=tuple(r.get("sinks", ())),
            since=r.get("since"),
        )
    return AlertsConfig(sinks=sinks, rules=rules, report=report)


def _sink(name: str, spec: Mapping[str, Any]) -> SinkConfig:
    fields_ = {k: v for k, v in spec.items() if k != "to"}
    return SinkConfig(name=name, to=tuple(spec.get("to", ())), **fields_)


def build_integration(spec: Mapping[str, Any] | None) -> IntegrationInfo:
    spec = spec or {}
    return IntegrationInfo(
        owner=spec.get("owner"), purpose=spec.get("purpose"), reviewed=spec.get("reviewed")
    )
