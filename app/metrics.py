"""GET /metrics: Prometheus metrics for the whole hub, read from the ledger at scrape time.

Counting happens inside the ledger's scripts (webhooks per source and outcome, attempts per
connection and outcome) and in the receivers' processes (every answer, rejections; added to
the ledger's counters within a second, see app/answer_counts.py), so every receiver and
worker host reports the same hub-wide numbers. Every label value comes from a bounded set
(configured names, fixed outcomes, status classes), never from a request's or an operator's
free text.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.alert_metrics import AlertingCollector
from app.archive_access import process_archive
from app.runtime import Hub
from core.archive import Archive
from core.archive.mover import archive_lag_seconds, oldest_done_age_seconds
from core.errors import ArchiveUnavailable, LedgerUnavailable
from core.ledger.keys import StatsHash
from core.operations import STATE_NAMES
from core.vocabulary import HUB_ITSELF, CircuitState

bp = Blueprint("metrics", __name__)

#: why a connection is paused, as a label: the hub's own pause on a refused credential, an
#: operator's (`crmhub pause`, whatever reason text they gave), or anything else
PAUSE_REASONS = ("auth", "manual", "other")


def pause_reason(pause: dict[str, Any]) -> str:
    if pause.get("reason") == "auth":
        return "auth"
    return "manual" if pause.get("by") not in (None, "", HUB_ITSELF) else "other"


class LedgerCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        ledger = self.hub.ledger
        up = GaugeMetricFamily("crmhub_ledger_up", "1 if the ledger's Redis answers")
        self.hub.answers.flush()  # this process's own counts, up to this instant
        try:
            stats = ledger.stats(StatsHash.WEBHOOKS, StatsHash.ATTEMPTS, StatsHash.ANSWERS)
            queue = ledger.queue_figures()
            states = {name: ledger.connection_state(name) for name in self.hub.config.connections}
        except (LedgerUnavailable, redis.RedisError):  # report the ledger down, not a 500
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        received = CounterMetricFamily(
            "crmhub_webhooks",
            "Webhooks by source and outcome (accepted, duplicate, echo, "
            "unauthorized, malformed, too_large, unavailable, internal_error)",
            labels=["source", "outcome"],
        )
        for key, value in stats[StatsHash.WEBHOOKS].items():
            source, _, outcome = key.rpartition("|")
            received.add_metric([source, outcome], float(value))
        yield received

        answered = CounterMetricFamily(
            "crmhub_http_responses",
            "Every answer of the receivers, by route (webhooks, "
            "healthz, readyz, metrics, other), status class and source (a configured source, "
            "'unknown' for any other name, empty off the webhooks route)",
            labels=["route", "status_class", "source"],
        )
        for key, value in stats[StatsHash.ANSWERS].items():
            route, status_class, source = key.split("|", 2)
            answered.add_metric([route, status_class, source], float(value))
        yield answered

        tried = CounterMetricFamily(
            "crmhub_delivery_attempts",
            "Delivery attempts by connection and outcome",
            labels=["connection", "outcome"],
        )
        for key, value in stats[StatsHash.ATTEMPTS].items():
            connection, _, outcome = key.rpartition("|")
            tried.add_metric([connection, outcome], float(value))
        yield tried

        messages = CounterMetricFamily(
            "crmhub_queue_messages",
            "Celery messages (hints) the ledger published, and those "
            "batches withdrew again because their delivery went out with another",
            labels=["kind"],
        )
        messages.add_metric(["published"], float(queue["published"]))
        messages.add_metric(["withdrawn"], float(queue["withdrawn"]))
        yield messages
        depth = GaugeMetricFamily(
            "crmhub_queue_depth", "Messages waiting in the deliveries queue (not yet taken)"
        )
        depth.add_metric([], float(queue["waiting"]))
        yield depth

        deliveries = GaugeMetricFamily(
            "crmhub_deliveries", "Deliveries in each ledger state", labels=["connection", "state"]
        )
        paused = GaugeMetricFamily(
            "crmhub_connection_paused",
            "1 while a connection is paused, under its reason "
            "(auth: the target refused the credentials; manual: an operator paused it; "
            "other), 0 under the others",
            labels=["connection", "reason"],
        )
        circuit = GaugeMetricFamily(
            "crmhub_circuit_open",
            "1 while a connection's circuit breaker is open",
            labels=["connection"],
        )
        for name, state in states.items():
            for s in STATE_NAMES:
                deliveries.add_metric([name, s], max(0, state["counts"].get(s, 0)))
            reason = pause_reason(state["pause"]) if state["pause"] else None
            for label in PAUSE_REASONS:
                paused.add_metric([name, label], 1 if label == reason else 0)
            is_open = state["breaker"].get("state") == CircuitState.OPEN
            circuit.add_metric([name], 1 if is_open else 0)
        yield deliveries
        yield paused
        yield circuit
        yield from _target_usage(self.hub)


def _target_usage(hub: Hub) -> Iterator[Metric]:
    """The targets' own API usage reports (Salesforce's Sforce-Limit-Info), as the workers
    last read them: used and limit per connection that reports one."""
    usage = GaugeMetricFamily(
        "crmhub_target_api_usage",
        "API requests the target counts against its limit (Salesforce: Sforce-Limit-Info's "
        "api-usage, over the org's rolling 24 h), by connection: used and limit",
        labels=["connection", "kind"],
    )
    for name in hub.config.connections:
        try:
            reported = hub.ledger.memo.usage(name)
        except LedgerUnavailable:
            continue
        for kind in ("used", "limit"):
            if kind in reported:
                usage.add_metric([name, kind], reported[kind])
    yield usage


class StorageCollector(Collector):
    """Hot and cold storage: Redis memory against its limit, how far the archiver is behind,
    what the archive holds (core/archive/)."""

    def __init__(self, hub: Hub, archive: Callable[[], Archive]) -> None:
        self.hub = hub
        self.archive = archive  # opened on first use

    def collect(self) -> Iterator[Metric]:
        ledger = self.hub.ledger
        try:
            memory = ledger.memory()
            done = ledger.done_count()
            age = oldest_done_age_seconds(ledger)
            lag = archive_lag_seconds(ledger, self.hub.settings.hot_retention_seconds)
        except (LedgerUnavailable, redis.RedisError):
            return  # crmhub_ledger_up says so
        for name, help_text, value in (
            (
                "crmhub_redis_memory_used_bytes",
                "Memory Redis uses (INFO used_memory)",
                memory["used"],
            ),
            (
                "crmhub_redis_memory_limit_bytes",
                "Redis's maxmemory (0: no limit set); at the limit Redis refuses writes "
                "(noeviction) and the receiver answers 503",
                memory["limit"],
            ),
            ("crmhub_hot_done_events", "Events done for good still in Redis", done),
            (
                "crmhub_archive_oldest_done_age_seconds",
                "Age of the oldest event done for good still in Redis",
                age,
            ),
            (
                "crmhub_archive_lag_seconds",
                "How far past CRMHUB_HOT_RETENTION_SECONDS the oldest done event still in "
                "Redis is (0: the archiver keeps up)",
                lag,
            ),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], float(value))
            yield gauge
        up = GaugeMetricFamily("crmhub_archive_up", "1 if the archive's database answers")
        try:
            rows = self.archive().count()
        except ArchiveUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        archived = GaugeMetricFamily("crmhub_archive_events", "Events in the archive")
        archived.add_metric([], float(rows))
        yield archived


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int, dict[str, str]]:
    hub: Hub = current_app.extensions["crmhub"]
    token = hub.settings.metrics_token
    if token and not _authorized(token):
        return (
            jsonify(
                {
                    "error": "unauthorized",
                    "detail": "/metrics needs the header "
                    "`Authorization: Bearer <CRMHUB_METRICS_TOKEN>`",
                }
            ),
            401,
            {"WWW-Authenticate": 'Bearer realm="crmhub metrics"'},
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(hub))
    registry.register(StorageCollector(hub, process_archive))
    registry.register(AlertingCollector(hub))
    # CONTENT_TYPE_LATEST carries its charset already: content_type, not mimetype (which
    # would append a second one)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
