"""Checks on the configuration document as written, before (and regardless of) its shape:
references between sections and the secrets it names. Reading the raw document means an entry
with a typo elsewhere still has these checked, so `crmhub config check` lists every problem
in one pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.config.alerting import SINK_SECRET_KEYS
from core.config.schema import ENV_NAME_PATTERN, AuthSchema
from core.config.yaml_source import YamlDocument
from core.errors import ConfigProblem


def entries(data: dict[str, Any], section: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """The entries of a section as written, skipping what is not even a mapping (the shape
    check reports those)."""
    written = data.get(section)
    if isinstance(written, dict):
        for name, spec in written.items():
            if isinstance(spec, dict):
                yield str(name), spec


def reference_problems(data: dict[str, Any], doc: YamlDocument) -> list[ConfigProblem]:
    """Names one section gives that another must define, read from the document as written
    (an entry whose shape has problems is still checked; one that is defined but invalid is
    not reported missing)."""
    problems: list[ConfigProblem] = []
    defined = {
        section: sorted(name for name, _ in entries(data, section))
        for section in ("sources", "connections")
    }

    def check(key: str, kind: str, section: str, value: Any) -> None:
        if isinstance(value, str) and value not in defined[section]:
            problems.append(
                ConfigProblem(
                    str(doc.path),
                    key,
                    f"no {kind} named {value!r} (defined: {', '.join(defined[section]) or 'none'})",
                    doc.line_of(key),
                )
            )

    for name, spec in entries(data, "sources"):
        poll = spec.get("poll")
        if isinstance(poll, dict):
            check(
                f"sources.{name}.poll.connection",
                "connection",
                "connections",
                poll.get("connection"),
            )
        echo = spec.get("echo")
        if isinstance(echo, dict):
            check(
                f"sources.{name}.echo.connection",
                "connection",
                "connections",
                echo.get("connection"),
            )
    for name, spec in entries(data, "mappings"):
        check(f"mappings.{name}.source", "source", "sources", spec.get("source"))
        check(f"mappings.{name}.connection", "connection", "connections", spec.get("connection"))
        fetch = spec.get("fetch")
        if isinstance(fetch, dict):
            check(
                f"mappings.{name}.fetch.connection",
                "connection",
                "connections",
                fetch.get("connection"),
            )
    return problems


#: the auth keys that name an environment variable (a misspelt one is a shape problem)
AUTH_SECRET_KEYS = tuple(sorted(k for k in AuthSchema().fields if k.endswith("_env")))


def secret_problems(
    data: dict[str, Any], doc: YamlDocument, environ: Mapping[str, str]
) -> list[ConfigProblem]:
    """Every secret the document names that the environment does not hold, read from the
    document as written, so shape problems elsewhere in an entry do not hide it."""
    problems: list[ConfigProblem] = []

    def missing(key: str, var: Any, message: str) -> None:
        # a name that is not one is a shape problem, reported there
        if isinstance(var, str) and ENV_NAME_PATTERN.match(var) and not environ.get(var):
            problems.append(
                ConfigProblem(str(doc.path), key, message.format(var=var), doc.line_of(key))
            )

    for name, spec in entries(data, "sources"):
        verify = spec.get("verify")
        names = verify.get("secret_env") if isinstance(verify, dict) else None
        for var in [names] if isinstance(names, str) else names if isinstance(names, list) else []:
            missing(
                f"sources.{name}.verify.secret_env",
                var,
                "environment variable {var} is not set (it holds the signing secret; "
                "set it before starting the hub)",
            )
    for name, spec in entries(data, "connections"):
        auth = spec.get("auth")
        if isinstance(auth, dict):
            for field in AUTH_SECRET_KEYS:
                missing(
                    f"connections.{name}.auth.{field}",
                    auth.get(field),
                    "environment variable {var} is not set",
                )
    for name, spec in alert_sinks(data):
        for field in SINK_SECRET_KEYS:
            missing(
                f"alerts.sinks.{name}.{field}",
                spec.get(field),
                "environment variable {var} is not set (alert sink " + repr(name) + ")",
            )
    return problems


def alert_sinks(data: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """`alerts.sinks` as written (what is not a mapping is the shape check's)."""
    alerts = data.get("alerts")
    sinks = alerts.get("sinks") if isinstance(alerts, dict) else None
    if isinstance(sinks, dict):
        for name, spec in sinks.items():
            if isinstance(spec, dict):
                yield str(name), spec


def alert_reference_problems(data: dict[str, Any], doc: YamlDocument) -> list[ConfigProblem]:
    """`alerts.report.sinks` names sinks `alerts.sinks` defines."""
    alerts = data.get("alerts")
    report = alerts.get("report") if isinstance(alerts, dict) else None
    named = report.get("sinks") if isinstance(report, dict) else None
    defined = sorted(name for name, _ in alert_sinks(data))
    problems = []
    for index, sink in enumerate(named if isinstance(named, list) else []):
        if isinstance(sink, str) and sink not in defined:
            key = f"alerts.report.sinks.{index}"
            problems.append(
                ConfigProblem(
                    str(doc.path),
                    key,
                    f"no alert sink named {sink!r} (defined: {', '.join(defined) or 'none'})",
                    doc.line_of(key),
                )
            )
    return problems
