"""The validated configuration as plain, immutable objects. Built by core.config.loader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config.alerting import AlertsConfig, IntegrationInfo
from core.config.polling import PollSpec
from core.config.two_way import TwoWaySpec
from core.paths import ValueRef
from core.signatures import VerifyOptions


@dataclass(frozen=True)
class EchoSpec:
    """How to recognise this source's events that only repeat what the hub wrote."""

    connection: str
    object: str
    record: tuple[str, ...]
    fields: tuple[str, ...] = ()
    field: tuple[str, ...] = ()
    value: tuple[str, ...] = ()
    window_seconds: int = 600


@dataclass(frozen=True)
class SourceConfig:
    name: str
    verify: VerifyOptions
    secret_env: tuple[str, ...]
    allow_unsigned: bool = False
    event_id: ValueRef | None = None  # None: dedupe on a hash of the raw body
    event_type: ValueRef | None = None
    occurred_at: ValueRef | None = None
    batch: bool = False  # body is a JSON array, one event per element
    #: one event per element of these arrays (each path inside an element of the one
    #: before); () : the body is one event
    split: tuple[str, ...] = ()
    public_url: str | None = None  # the URL senders sign, when behind a proxy
    max_body_bytes: int | None = None  # None: CRMHUB_MAX_BODY_BYTES (default 1 MiB)
    echo: EchoSpec | None = None
    expect_activity_within: float | None = None  # seconds; None: never went_quiet
    poll: PollSpec | None = None  # lists changed records on a schedule (core/polling.py)
    webhooks: bool = True  # receives webhooks (it has `verify:`); False: polls only


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` attempts in any rolling `per_seconds`; with `burst`, a steady
    rate of `requests` per `per_seconds` with up to `burst` more at once instead."""

    requests: int
    per_seconds: float
    burst: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    give_up_after_seconds: float = 24 * 3600.0


@dataclass(frozen=True)
class TargetField:
    """What the target accepts in one field of an object (connections.<c>.objects.<o>.fields)."""

    name: str
    type: str | None = None  # string|number|boolean|date|datetime|enum|email|phone (None: any)
    max_length: int | None = None
    required: bool = False  # must be written whenever the record may be created
    values: tuple[Any, ...] | None = None  # the picklist (type enum)


@dataclass(frozen=True)
class ObjectSpec:
    """The target field spec of one connector object; mapped records are checked against it."""

    name: str
    fields: Mapping[str, TargetField] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionConfig:
    name: str
    connector: str
    base_url: str  # the login_url when only that is given (salesforce)
    auth: Mapping[str, Any] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: float = 10.0
    options: Mapping[str, Any] = field(default_factory=dict)  # connector-specific
    objects: Mapping[str, ObjectSpec] = field(default_factory=dict)  # target field specs
    login_url: str = ""  # salesforce: the OAuth host (calls go to the token's instance_url)
    api_version: str = ""  # salesforce: "62.0" (empty: the connector's default)
    accounts_url: str = ""  # zoho: the data centre's accounts server (calls go to api_domain)
    #: dynamics: the alternate keys defined in Dataverse, per entity set (their columns)
    alternate_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    expect_success_within: float | None = None  # seconds; None: never went_quiet


@dataclass(frozen=True)
class Predicate:
    """A condition on a body field: `equals`, `in` or `exists`."""

    path: str
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    exists: bool | None = None
    has_equals: bool = False


@dataclass(frozen=True)
class WhenSpec:
    event_types: tuple[str, ...] | None = None  # None: every event of the source
    predicates: tuple[Predicate, ...] = ()


@dataclass(frozen=True)
class MatchSpec:
    field: str
    from_: tuple[str, ...]
    normalize: str | None = None
    fold_plus_addressing: bool = False
    region: str | None = None  # default phone region for `normalize: phone`
    external_id: bool = False  # the field is an External ID at the target: upsert on it


@dataclass(frozen=True)
class FieldSpec:
    name: str
    from_: tuple[str, ...] = ()  # several paths: the first non-empty wins
    const: Any = None
    has_const: bool = False
    default: Any = None
    has_default: bool = False
    required: bool = False
    transform: tuple[Mapping[str, Any], ...] = ()  # each {name: args}, as written
    owner: str = "source"  # source | target
    #: the transform steps built once at load time (core.mapping.transforms); each is called
    #: as step(value, body)
    steps: tuple[Callable[..., Any], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class FetchSpec:
    """Read the record behind a thin webhook before mapping; paths under `fetched.` read it."""

    connection: str
    object: str
    id: tuple[str, ...]  # paths into the event to the record's id (first non-empty)
    properties: tuple[str, ...] = ()
    window_seconds: float = 10.0  # one fetch serves the record's events of this window


@dataclass(frozen=True)
class RelatedSpec:
    """A record found (or created) before the main one, linked to it through `link`."""

    link: str  # the main record's field that takes the related record's id
    object: str
    match: MatchSpec
    fields: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class MappingConfig:
    name: str
    source: str
    connection: str
    object: str
    when: WhenSpec = field(default_factory=WhenSpec)
    action: str = "upsert"  # upsert | create_only | update_only
    match: MatchSpec | None = None
    fields: tuple[FieldSpec, ...] = ()
    conflict: str | None = None  # newest_wins | source_wins (None: by source)
    #: the target field spec of connection + object, resolved at load time (None: unchecked)
    target: ObjectSpec | None = field(default=None, repr=False)
    fetch: FetchSpec | None = None
    related: tuple[RelatedSpec, ...] = ()
    integration: IntegrationInfo = field(default_factory=IntegrationInfo)
    two_way: TwoWaySpec | None = None  # one of a two-way pair (core/config/two_way.py)


@dataclass(frozen=True)
class Config:
    path: str
    sources: Mapping[str, SourceConfig]
    connections: Mapping[str, ConnectionConfig]
    mappings: Mapping[str, MappingConfig]
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    def mappings_for(self, source: str) -> tuple[MappingConfig, ...]:
        return tuple(m for m in self.mappings.values() if m.source == source)
