"""Alerts for on-call: a durable outbox in Redis, sent by the scheduler, never by the worker.

A worker that pauses a connection only appends to the outbox (`ledger.alerts`,
core/ledger/outbox.py: one Redis command), so alert delivery never blocks or fails a delivery.
The scheduler's `send_alerts` posts each alert as JSON to CRMHUB_ALERT_WEBHOOK_URL, retrying
with backoff, and reports it to Sentry when SENTRY_DSN is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Alert:
    kind: str  # connection_paused | ...
    connection: str
    summary: str
    detail: str = ""
    at: float = field(default_factory=time.time)
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        return {"source": "crmhub", **asdict(self)}


def webhook_sender(url: str, client: httpx.Client) -> Callable[[dict[str, Any]], None]:
    def send(alert: dict[str, Any]) -> None:
        response = client.post(url, json=alert)
        response.raise_for_status()

    return send
