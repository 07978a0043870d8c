"""/metrics, alerting's part (app/metrics.py registers it): receipt-to-write latency per
connection (a histogram the ledger's finish script fills), the backlog's age per connection,
the alerts firing by kind, and what the alert sinks were sent or refused."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from app.runtime import Hub
from core.alerting.model import AlertKind
from core.alerting.service import connection_objects
from core.errors import LedgerUnavailable
from core.ledger.keys import LATENCY_BUCKETS, StatsHash


class AlertingCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        ledger, config = self.hub.ledger, self.hub.config
        try:
            stats = ledger.stats(StatsHash.LATENCY, StatsHash.ALERTS)
            oldest = ledger.alerting.oldest_waiting(connection_objects(config))
            firing = ledger.alerting.firing()
        except (LedgerUnavailable, redis.RedisError):
            return  # crmhub_ledger_up says so
        yield from self._latency(stats[StatsHash.LATENCY], list(config.connections))

        now = time.time()
        backlog = GaugeMetricFamily(
            "crmhub_backlog_age_seconds",
            "Age of each connection's oldest pending or scheduled delivery (0: none waiting)",
            labels=["connection"],
        )
        for name in config.connections:
            backlog.add_metric([name], max(0.0, now - oldest[name]) if name in oldest else 0.0)
        yield backlog

        by_kind: dict[str, int] = defaultdict(int)
        for state in firing:
            by_kind[state.kind] += 1
        alerts = GaugeMetricFamily(
            "crmhub_alerts_firing", "Alerts firing now, by kind", labels=["kind"]
        )
        for kind in AlertKind:
            if kind not in (AlertKind.TEST, AlertKind.HEALTH_REPORT):
                alerts.add_metric([kind.value], by_kind.get(kind.value, 0))
        yield alerts

        notices = CounterMetricFamily(
            "crmhub_alert_notifications",
            "Alert notices by sink and outcome: sent, failed (retried later), given_up "
            "(after the outbox's last attempt, or for a sink no longer configured)",
            labels=["sink", "outcome"],
        )
        for key, value in stats[StatsHash.ALERTS].items():
            sink, _, outcome = key.rpartition("|")
            notices.add_metric([sink, outcome], float(value))
        yield notices

    def _latency(self, counts: dict[str, int], connections: list[str]) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(
            "crmhub_receipt_to_write_seconds",
            "From the webhook's receipt to its successful write, per connection",
            labels=["connection"],
        )
        labels = [str(le) for le in LATENCY_BUCKETS]
        for name in connections:
            per_bucket = {
                float(key.rpartition("|")[2]) if not key.endswith("|+Inf") else float("inf"): n
                for key, n in counts.items()
                if key.startswith(name + "|") and not key.endswith("|sum_ms")
            }
            running, buckets = 0, []
            for label, le in [*zip(labels, LATENCY_BUCKETS, strict=True), ("+Inf", float("inf"))]:
                running += per_bucket.get(le, 0)
                buckets.append((label, float(running)))
            histogram.add_metric(
                [name], buckets, sum_value=counts.get(f"{name}|sum_ms", 0) / 1000.0
            )
        yield histogram
