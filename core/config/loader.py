"""Load crmhub.yaml: shape (marshmallow), cross-section checks and secrets, all at once.

Every problem found is collected, each naming file, line and key, so an integration engineer
fixes them all in one pass instead of one per restart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields

from core.config.alerting import build_alerts, build_integration
from core.config.connector_checks import auth_problems
from core.config.document_checks import (
    alert_reference_problems,
    reference_problems,
    secret_problems,
)
from core.config.model import (
    Config,
    ConnectionConfig,
    EchoSpec,
    FetchSpec,
    FieldSpec,
    MappingConfig,
    MatchSpec,
    ObjectSpec,
    Predicate,
    RateLimit,
    RelatedSpec,
    RetryPolicy,
    SourceConfig,
    TargetField,
    WhenSpec,
)
from core.config.polling import build_poll, poll_problems
from core.config.schema import ConfigSchema, FieldOrPath, FieldSchema
from core.config.two_way import build_two_way, two_way_problems
from core.config.yaml_source import YamlDocument, read_yaml
from core.config.zoho_checks import zoho_problems
from core.errors import ConfigError, ConfigProblem
from core.mapping.fieldspec import static_problems
from core.mapping.transforms import build_transform
from core.signatures import VerifyOptions

SECTIONS = ("sources", "connections", "mappings")


def load_config(
    path: Path | str,
    environ: Mapping[str, str],
    *,
    check_secrets: bool = True,
    connectors: Iterable[str] | None = None,
) -> Config:
    """Read, validate and build the configuration, or raise ConfigError with every problem.

    Every check runs even when another found problems: shape (per entry), references between
    sections and secrets (both read from the document as written, so an entry with a typo
    still has its references and secrets checked), then the checks that need built objects
    (on the entries whose shape is valid). Problems come in file order.

    `connectors`: the connector names this process knows (the registry in connectors/);
    when given, a connection naming another connector is a problem. Given as the registry
    (name -> class), each connector's `config_problems(connection, mappings)` adds its own
    rules ((key, message) pairs; a Dynamics match field must be an alternate key).
    """
    doc = read_yaml(Path(path))
    problems: list[ConfigProblem] = list(doc.problems)
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    str(doc.path), "", "expected a mapping with sources, connections and mappings"
                )
            ]
        )
    data = {k: ({} if v is None and k in SECTIONS else v) for k, v in data.items()}
    loaded = _load_shape(data, doc, problems)
    config = _build(str(doc.path), loaded)
    problems.extend(reference_problems(data, doc))
    problems.extend(alert_reference_problems(data, doc))
    problems.extend(_cross_checks(config, doc, connectors))
    if check_secrets:
        problems.extend(secret_problems(data, doc, environ))
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    return config


def _load_shape(
    data: dict[str, Any], doc: YamlDocument, problems: list[ConfigProblem]
) -> dict[str, Any]:
    """The document through the schema: every shape problem goes to `problems`; returns the
    entries that are valid (an entry with any problem is left out of the built config)."""
    try:
        loaded: dict[str, Any] = ConfigSchema().load(data)
        return loaded
    except ValidationError as exc:
        for key, message in _flatten(exc.messages):
            problems.append(
                ConfigProblem(str(doc.path), key, _explain(key, message), doc.line_of(key))
            )
        errors = exc.messages if isinstance(exc.messages, dict) else {}
        valid = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        out: dict[str, Any] = {}
        for section in SECTIONS:
            bad = errors.get(section, {})
            entries = valid.get(section)
            out[section] = (
                {
                    name: spec
                    for name, spec in entries.items()
                    if not isinstance(bad, dict) or name not in bad
                }
                if isinstance(entries, dict) and isinstance(bad, dict)
                else {}
            )
        # a problem anywhere in `alerts:` leaves it out whole (it is reported above)
        out["alerts"] = valid.get("alerts", {}) if "alerts" not in errors else {}
        return out


def _flatten(messages: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("value", "_schema"):  # Dict-value / schema-level: same place
                yield from _flatten(value, prefix)
            elif key == "key":
                yield from ((prefix, f"invalid name: {m}") for _, m in _flatten(value, ""))
            else:
                yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                yield from _flatten(item, prefix)
            else:
                yield prefix, str(item)
    else:
        yield prefix, str(messages)


def _schema_at(parts: list[str]) -> Schema | None:
    """The marshmallow schema that validates the mapping at `parts` (None if dynamic/unknown)."""
    schema: Schema = ConfigSchema()
    i = 0
    while i < len(parts):
        field = next(
            (f for name, f in schema.fields.items() if (f.data_key or name) == parts[i]), None
        )
        if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            schema, i = field.schema, i + 1
        elif isinstance(field, fields.Dict) and isinstance(field.value_field, fields.Nested):
            nested = field.value_field.schema
            if not isinstance(nested, Schema):
                return None
            schema, i = nested, i + 2  # skip the user-chosen name
        elif isinstance(field, fields.Dict) and isinstance(field.value_field, FieldOrPath):
            schema, i = FieldSchema(), i + 2  # a mapping's field, written in full
        elif (
            isinstance(field, fields.List)
            and isinstance(field.inner, fields.Nested)
            and isinstance(field.inner.schema, Schema)
        ):
            schema, i = field.inner.schema, i + 2  # skip the list index
        else:
            return None
    return schema


def _explain(key: str, message: str) -> str:
    if message != "Unknown field.":
        return message
    parent, _, name = key.rpartition(".")
    schema = _schema_at(parent.split(".") if parent else [])
    if schema is None:
        return "unknown key"
    allowed = sorted(f.data_key or n for n, f in schema.fields.items())
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}expected one of: {', '.join(allowed)}"


def _build(path: str, loaded: dict[str, Any]) -> Config:
    sources = {name: _source(name, spec) for name, spec in loaded["sources"].items()}
    connections = {name: _connection(name, spec) for name, spec in loaded["connections"].items()}
    mappings = {
        name: _mapping(name, spec, connections) for name, spec in loaded["mappings"].items()
    }
    return Config(
        path=path,
        sources=sources,
        connections=connections,
        mappings=mappings,
        alerts=build_alerts(loaded.get("alerts") or {}),
    )


def _source(name: str, spec: dict[str, Any]) -> SourceConfig:
    # a source that only polls receives no webhooks: the receiver has no route for it
    verify = dict(spec.get("verify") or {"scheme": "none"})
    secret_env = verify.pop("secret_env", ())
    options = VerifyOptions(**verify)
    return SourceConfig(
        name=name,
        verify=options,
        secret_env=tuple(secret_env),
        allow_unsigned=spec["allow_unsigned"],
        event_id=spec.get("event_id"),
        event_type=spec.get("event_type"),
        occurred_at=spec.get("occurred_at"),
        batch=spec["batch"],
        split=spec.get("split", ()),
        public_url=spec.get("public_url"),
        max_body_bytes=spec.get("max_body_bytes"),
        expect_activity_within=spec.get("expect_activity_within"),
        poll=build_poll(spec["poll"]) if "poll" in spec else None,
        webhooks="verify" in spec,
        echo=EchoSpec(
            connection=spec["echo"]["connection"],
            object=spec["echo"]["object"],
            record=spec["echo"]["record"],
            fields=spec["echo"].get("fields_", ()),
            field=spec["echo"].get("field", ()),
            value=spec["echo"].get("value", ()),
            window_seconds=spec["echo"]["window_seconds"],
        )
        if "echo" in spec
        else None,
    )


def _connection(name: str, spec: dict[str, Any]) -> ConnectionConfig:
    rate = spec.get("rate_limit")
    return ConnectionConfig(
        name=name,
        connector=spec["connector"],
        base_url=(
            spec.get("base_url") or spec.get("login_url") or spec.get("accounts_url") or ""
        ).rstrip("/"),
        login_url=(spec.get("login_url") or "").rstrip("/"),
        accounts_url=(spec.get("accounts_url") or "").rstrip("/"),
        api_version=spec.get("api_version", ""),
        alternate_keys={
            entity_set: tuple(columns)
            for entity_set, columns in spec.get("alternate_keys", {}).items()
        },
        auth=spec["auth"],
        rate_limit=RateLimit(**rate) if rate else None,
        retry=RetryPolicy(**spec.get("retry", {})),
        options=spec.get("options", {}),
        objects={obj: _object_spec(obj, o) for obj, o in spec.get("objects", {}).items()},
        expect_success_within=spec.get("expect_success_within"),
        **({"timeout_seconds": spec["timeout_seconds"]} if "timeout_seconds" in spec else {}),
    )


def _object_spec(name: str, spec: dict[str, Any]) -> ObjectSpec:
    return ObjectSpec(
        name=name,
        fields={
            field: TargetField(
                name=field,
                type=f.get("type") or ("enum" if "values" in f else None),
                max_length=f.get("max_length"),
                required=f.get("required", False),
                values=tuple(f["values"]) if "values" in f else None,
            )
            for field, f in spec["fields_"].items()
        },
    )


def _mapping(
    name: str, spec: dict[str, Any], connections: Mapping[str, ConnectionConfig]
) -> MappingConfig:
    when = spec.get("when", {})
    predicates = tuple(
        Predicate(
            path=p["path"],
            equals=p.get("equals"),
            has_equals="equals" in p,
            one_of=tuple(p["in_"]) if "in_" in p else None,
            exists=p.get("exists"),
        )
        for p in when.get("fields_", ())
    )
    match = spec.get("match")
    fetch = spec.get("fetch")
    return MappingConfig(
        name=name,
        source=spec["source"],
        connection=spec["connection"],
        object=spec["object"],
        when=WhenSpec(event_types=when.get("event_type"), predicates=predicates),
        action=spec.get("action", "upsert"),
        match=_match(match) if match else None,
        fields=_fields(spec["fields_"]),
        conflict=spec.get("conflict"),
        fetch=FetchSpec(
            connection=fetch["connection"],
            object=fetch["object"],
            id=fetch["id"],
            properties=tuple(fetch["properties"]),
            window_seconds=fetch["window_seconds"],
        )
        if fetch
        else None,
        related=tuple(
            RelatedSpec(
                link=link,
                object=r["object"],
                match=_match(r["match"]),
                fields=_fields(r["fields_"]),
            )
            for link, r in (spec.get("related") or {}).items()
        ),
        integration=build_integration(spec.get("integration")),
        two_way=build_two_way(spec.get("two_way")),
        target=connections[spec["connection"]].objects.get(spec["object"])
        if spec["connection"] in connections
        else None,
    )


def _match(match: dict[str, Any]) -> MatchSpec:
    return MatchSpec(
        field=match["field"],
        from_=match["from_"],
        normalize=match.get("normalize"),
        fold_plus_addressing=match.get("fold_plus_addressing", False),
        region=match.get("region"),
        external_id=match.get("external_id", False),
    )


def _fields(written: dict[str, Any]) -> tuple[FieldSpec, ...]:
    return tuple(
        FieldSpec(
            name=field,
            from_=f.get("from_", ()),
            const=f.get("const"),
            has_const="const" in f,
            default=f.get("default"),
            has_default="default" in f,
            required=f.get("required", False),
            transform=f.get("transform", ()),
            owner=f.get("owner", "source"),
            steps=_steps(f.get("transform", ())),
        )
        for field, f in written.items()
    )


def _steps(transform: tuple[dict[str, Any], ...]) -> tuple[Any, ...]:
    try:
        return tuple(build_transform(step) for step in transform)
    except ValueError:
        return ()  # reported by _cross_checks with its place


def _cross_checks(
    config: Config, doc: YamlDocument, connectors: Iterable[str] | None
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(str(doc.path), key, message, doc.line_of(key)))

    listing = connectors if isinstance(connectors, Mapping) else None
    for key, message in poll_problems(config.sources, config.connections, listing):
        problem(key, message)
    known = sorted(connectors) if connectors is not None else None
    for conn in config.connections.values():
        if known is not None and conn.connector not in known:
            problem(
                f"connections.{conn.name}.connector",
                f"unknown connector {conn.connector!r}; expected one of: {', '.join(known)}",
            )
        # a connector's own rules (the registry passes the classes: `config_problems`)
        checks = (
            getattr(connectors.get(conn.connector), "config_problems", None)
            if isinstance(connectors, Mapping)
            else None
        )
        if checks is not None:
            writers = [m for m in config.mappings.values() if m.connection == conn.name]
            for key, message in checks(conn, writers):
                problem(key, message)
        problems.extend(
            ConfigProblem(str(doc.path), key, message, doc.line_of(key))
            for key, message in auth_problems(conn)
        )
    for key, message in zoho_problems(config):
        problem(key, message)
    for key, message in two_way_problems(config):
        problem(key, message)
    for m in config.mappings.values():
        written = [(f"mappings.{m.name}.fields", spec) for spec in m.fields] + [
            (f"mappings.{m.name}.related.{r.link}.fields", spec)
            for r in m.related
            for spec in r.fields
        ]
        for where, spec in written:
            for index, step in enumerate(spec.transform):
                try:
                    build_transform(step)
                except ValueError as exc:
                    problem(f"{where}.{spec.name}.transform.{index}", str(exc))
        if m.target is not None and all(len(s.steps) == len(s.transform) for s in m.fields):
            for key, message in static_problems(m):
                problem(f"mappings.{m.name}.{key}" if key else f"mappings.{m.name}", message)
        if m.connection not in config.connections:
            continue  # missing (a reference problem) or invalid (a shape problem)
        if (
            m.conflict == "newest_wins"
            and m.source in config.sources
            and config.sources[m.source].occurred_at is None
            and config.sources[m.source].poll is None
        ):
            problem(
                f"mappings.{m.name}.conflict",
                f"newest_wins compares the source's timestamps, but source {m.source!r} has "
                "no `occurred_at`; set it, or use conflict: source_wins",
            )
        elif (
            m.when.event_types
            and m.source in config.sources
            and config.sources[m.source].event_type is None
            and config.sources[m.source].poll is None  # `<object>.changed`
        ):
            problem(
                f"mappings.{m.name}.when.event_type",
                f"source {m.source!r} has no `event_type`, so events cannot be filtered by "
                "type; set sources.<name>.event_type",
            )
    return problems
