"""The broker connection of the worker and the scheduler: back within a second of Redis.

When Redis goes away, Celery's worker consumer and beat both wait in kombu's reconnect loop,
which by default sleeps 2 s, then 4, 6, ... up to 30 s between attempts and gives up after 100
(the worker's consumer then stops). After a one-minute outage that left the hub delivering
nothing for up to 30 s after Redis was back, and a long outage stopped delivery for good.
Here a lost broker is tried again every second, for as long as it takes: one refused connect
a second costs nothing, and Redis is usually on this host or the next.
"""

from __future__ import annotations

from typing import Any

import kombu
from celery.app.amqp import AMQP

#: seconds between attempts to reach a lost broker
RECONNECT_SECONDS = 1.0


class PromptReconnect(kombu.Connection):
    """kombu's connection, retrying a lost broker every RECONNECT_SECONDS by default.

    Callers that pass their own intervals (a publish's retry policy) keep them."""

    def ensure_connection(
        self,
        errback: Any = None,
        max_retries: int | None = None,
        interval_start: float = RECONNECT_SECONDS,
        interval_step: float = 0,
        interval_max: float = RECONNECT_SECONDS,
        **kwargs: Any,
    ) -> PromptReconnect:
        super().ensure_connection(
            errback, max_retries, interval_start, interval_step, interval_max, **kwargs
        )
        return self


class PromptReconnectAMQP(AMQP):
    """Celery's broker plumbing with PromptReconnect connections (Celery(amqp=...))."""

    Connection = PromptReconnect
    BrokerConnection = PromptReconnect
