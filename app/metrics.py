"""GET /metrics: Prometheus metrics for the whole hub, read from the ledger at scrape time.

Counting happens inside the ledger's scripts (webhooks per source and outcome, attempts per
connection and outcome) and the receiver (rejections), so every receiver and worker host
reports the same hub-wide numbers, with no per-process state to aggregate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.runtime import Hub
from core.errors import LedgerUnavailable
from core.ledger.views import decode
from core.operations import STATE_NAMES

bp = Blueprint("metrics", __name__)


def count_rejection(hub: Hub, source: str, reason: str) -> None:
    """Best effort: a rejection is counted when Redis is up (its answer never depends on it)."""
    # metrics must never change the receiver's answer
    with contextlib.suppress(Exception):
        hub.ledger.redis.hincrby(hub.ledger.key("stats", "webhooks"), f"{source}|{reason}", 1)


class LedgerCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        ledger = self.hub.ledger
        up = GaugeMetricFamily("crmhub_ledger_up", "1 if the ledger's Redis answers")
        try:
            webhooks = decode(ledger.redis.hgetall(ledger.key("stats", "webhooks")))
            attempts = decode(ledger.redis.hgetall(ledger.key("stats", "attempts")))
            queue = ledger.queue_figures()
            states = {name: ledger.connection_state(name)
                      for name in self.hub.config.connections}
        except (LedgerUnavailable, redis.RedisError):     # report the ledger down, not a 500
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        received = CounterMetricFamily(
            "crmhub_webhooks", "Webhooks by source and outcome (accepted, duplicate, echo, "
            "unauthorized, malformed, too_large)", labels=["source", "outcome"])
        for key, value in webhooks.items():
            source, _, outcome = key.rpartition("|")
            received.add_metric([source, outcome], float(value))
        yield received

        tried = CounterMetricFamily("crmhub_delivery_attempts",
                                    "Delivery attempts by connection and outcome",
                                    labels=["connection", "outcome"])
        for key, value in attempts.items():
            connection, _, outcome = key.rpartition("|")
            tried.add_metric([connection, outcome], float(value))
        yield tried

        messages = CounterMetricFamily(
            "crmhub_queue_messages", "Celery messages (hints) the ledger published, and those "
            "batches withdrew again because their delivery went out with another",
            labels=["kind"])
        messages.add_metric(["published"], float(queue["published"]))
        messages.add_metric(["withdrawn"], float(queue["withdrawn"]))
        yield messages
        depth = GaugeMetricFamily("crmhub_queue_depth",
                                  "Messages waiting in the deliveries queue (not yet taken)")
        depth.add_metric([], float(queue["waiting"]))
        yield depth

        deliveries = GaugeMetricFamily("crmhub_deliveries", "Deliveries in each ledger state",
                                       labels=["connection", "state"])
        paused = GaugeMetricFamily("crmhub_connection_paused", "1 while a connection is paused",
                                   labels=["connection", "reason"])
        circuit = GaugeMetricFamily("crmhub_circuit_open",
                                    "1 while a connection's circuit breaker is open",
                                    labels=["connection"])
        for name, state in states.items():
            for s in STATE_NAMES:
                deliveries.add_metric([name, s], max(0, state["counts"].get(s, 0)))
            pause = state["pause"]
            paused.add_metric([name, pause.get("reason", "") if pause else ""],
                              1 if pause else 0)
            circuit.add_metric([name], 1 if state["breaker"].get("state") == "open" else 0)
        yield deliveries
        yield paused
        yield circuit


@bp.get("/metrics")
def metrics() -> Response:
    hub: Hub = current_app.extensions["crmhub"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(hub))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
