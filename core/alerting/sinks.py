"""Where notices go: a generic JSON webhook, PagerDuty's Events API v2, a Slack incoming
webhook, email over SMTP. Each sender takes the alert's JSON (core/alerting/notices.py) and
raises on anything but success; the outbox retries it (core/ledger/outbox.py).

Written by hand rather than through apprise: each is one documented request (the webhook and
Slack a JSON POST, PagerDuty one POST per event, email the standard library's smtplib), and
the outbox needs to know whether each was accepted, which a per-channel exception gives.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any

import httpx

from core.config.alerting import AlertsConfig, SinkConfig
from core.errors import AlertSinkError

Sender = Callable[[dict[str, Any]], None]


def sink_names(alerts: AlertsConfig, default_webhook_url: str | None) -> list[str]:
    """The sinks a notice goes to: those in `alerts.sinks`, else CRMHUB_ALERT_WEBHOOK_URL's."""
    if alerts.sinks:
        return sorted(alerts.sinks)
    return ["webhook"] if default_webhook_url else []


def build_senders(
    alerts: AlertsConfig,
    environ: Mapping[str, str],
    default_webhook_url: str | None,
    client: httpx.Client,
) -> dict[str, Sender]:
    if not alerts.sinks:
        return (
            {"webhook": webhook_sender(default_webhook_url, client)} if default_webhook_url else {}
        )
    return {name: _sender_or_refusal(sink, environ, client) for name, sink in alerts.sinks.items()}


def _sender_or_refusal(
    sink: SinkConfig, environ: Mapping[str, str], client: httpx.Client
) -> Sender:
    """The sink's sender; one that cannot be built (its secret unset) refuses every notice,
    so the others still go out and the refusal is recorded against this sink."""
    try:
        return _sender(sink, environ, client)
    except AlertSinkError as exc:
        problem = exc

        def refuse(alert: dict[str, Any]) -> None:
            raise problem

        return refuse


def _sender(sink: SinkConfig, environ: Mapping[str, str], client: httpx.Client) -> Sender:
    def secret(name: str | None) -> str:
        value = environ.get(name or "", "")
        if not value:
            raise AlertSinkError(f"alert sink {sink.name!r}: environment variable {name} is unset")
        return value

    if sink.type == "webhook":
        return webhook_sender(secret(sink.url_env), client)
    if sink.type == "slack":
        return slack_sender(secret(sink.url_env), client)
    if sink.type == "pagerduty":
        return pagerduty_sender(secret(sink.routing_key_env), sink.events_url, client)
    return email_sender(sink, environ)


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise AlertSinkError(f"{what} answered HTTP {response.status_code}: {response.text[:200]}")


def webhook_sender(url: str, client: httpx.Client) -> Sender:
    """POST the alert's JSON as it is (README: the generic webhook's body)."""

    def send(alert: dict[str, Any]) -> None:
        try:
            response = client.post(url, json=alert)
        except httpx.HTTPError as exc:
            raise AlertSinkError(
                f"alert webhook unreachable: {type(exc).__name__}: {exc}"
            ) from None
        _check(response, "the alert webhook")

    return send


def pagerduty_event(alert: dict[str, Any], routing_key: str) -> dict[str, Any]:
    """An Events API v2 event: trigger while firing, resolve with the same dedup_key
    (developer.pagerduty.com/docs/events-api-v2/trigger-events, .../resolve-events)."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if alert["status"] == "resolved" else "trigger",
        "dedup_key": alert["dedup_key"],
    }
    if event["event_action"] == "trigger":
        event["payload"] = {
            "summary": alert["summary"][:1024],
            "source": alert.get("connection") or alert.get("source") or "crmhub",
            "severity": alert["severity"]
            if alert["severity"] in ("critical", "error", "warning", "info")
            else "error",
            "timestamp": alert["at"],
            "component": alert.get("connection") or alert.get("source"),
            "group": alert["kind"],
            "class": alert["kind"],
            "custom_details": alert.get("details", {}),
        }
        links = alert.get("links") or {}
        if links:
            event["links"] = [{"href": href, "text": name} for name, href in links.items()]
        event["client"] = "crmhub"
    return event


def pagerduty_sender(routing_key: str, events_url: str, client: httpx.Client) -> Sender:
    def send(alert: dict[str, Any]) -> None:
        if alert["status"] not in ("firing", "resolved"):
            return  # a report or a note: not an incident
        try:
            response = client.post(events_url, json=pagerduty_event(alert, routing_key))
        except httpx.HTTPError as exc:
            raise AlertSinkError(f"PagerDuty unreachable: {type(exc).__name__}: {exc}") from None
        _check(response, "PagerDuty")  # 202 {"status": "success", ...} when accepted

    return send


def headline(alert: dict[str, Any]) -> str:
    state = "RESOLVED" if alert["status"] == "resolved" else alert["severity"].upper()
    return f"[crmhub {state}] {alert['summary']}"


def text_body(alert: dict[str, Any]) -> str:
    details = alert.get("details") or {}
    if isinstance(details.get("text"), str):  # the health report: already written out
        return "\n".join([headline(alert), "", details["text"]])
    lines = [headline(alert), ""]
    lines += [f"{key}: {value}" for key, value in details.items() if key != "command"]
    if details.get("command"):
        lines += ["", f"what to do: {details['command']}"]
    lines += [f"{name}: {href}" for name, href in (alert.get("links") or {}).items()]
    lines += ["", f"kind {alert['kind']}, dedup key {alert['dedup_key']}, at {alert['at']}"]
    return "\n".join(lines)


def slack_sender(url: str, client: httpx.Client) -> Sender:
    """A Slack incoming webhook takes `{"text": ...}` (api.slack.com/messaging/webhooks)."""

    def send(alert: dict[str, Any]) -> None:
        try:
            response = client.post(url, json={"text": text_body(alert)})
        except httpx.HTTPError as exc:
            raise AlertSinkError(f"Slack unreachable: {type(exc).__name__}: {exc}") from None
        _check(response, "Slack")

    return send


def email_sender(sink: SinkConfig, environ: Mapping[str, str]) -> Sender:
    def send(alert: dict[str, Any]) -> None:
        message = EmailMessage()
        message["Subject"] = headline(alert)[:200]
        message["From"] = sink.sender or "crmhub"
        message["To"] = ", ".join(sink.to)
        message.set_content(text_body(alert))
        try:
            with smtplib.SMTP(
                sink.host or "localhost", sink.port or 25, timeout=sink.timeout_seconds
            ) as smtp:
                if sink.starttls:
                    smtp.starttls()
                if sink.username_env:
                    smtp.login(
                        environ.get(sink.username_env, ""), environ.get(sink.password_env or "", "")
                    )
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise AlertSinkError(f"email via {sink.host}: {type(exc).__name__}: {exc}") from None

    return send
