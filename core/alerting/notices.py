"""An alert as its sinks receive it: the JSON body of the generic webhook (README), from which
the PagerDuty, Slack and email forms are made (core/alerting/sinks.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from core.alerting.model import SEVERITY, AlertKind, AlertState, iso_utc


def notice(state: AlertState, public_url: str | None, at: float) -> dict[str, Any]:
    """{id, kind, status, severity, connection, source, summary, details, dedup_key, at,
    links}: `source` is the webhook source concerned or null; times ISO 8601 UTC."""
    kind = AlertKind(state.kind)
    return {
        "id": state.id,
        "kind": kind.value,
        "status": state.status,
        "severity": SEVERITY[kind],
        "connection": state.connection,
        "source": state.source,
        "summary": state.summary,
        "details": state.details,
        "dedup_key": state.key,
        "at": iso_utc(at),
        "fired_at": iso_utc(state.fired_at),
        "resolved_at": iso_utc(state.resolved_at),
        "links": links(state, public_url),
    }


def links(state: AlertState, public_url: str | None) -> dict[str, str]:
    """Where the operator dashboard shows this alert's subject (CRMHUB_PUBLIC_URL set)."""
    if not public_url:
        return {}
    base = public_url.rstrip("/") + "/ui"
    if state.kind == AlertKind.DEAD_LETTERS and state.connection:
        query = urlencode(
            {"connection": state.connection, "category": state.details.get("category", "")}
        )
        return {"dashboard": f"{base}/dead-letters?{query}"}
    if state.connection:
        return {"dashboard": f"{base}/connections/{quote(state.connection, safe='')}"}
    return {"dashboard": base + "/"}
