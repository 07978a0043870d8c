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
import redis
from celery.app.amqp import AMQP
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

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


class _CollectedConnectionIsLost:
    """A Redis channel whose transport was collected says the broker connection is lost.

    After a lost broker Celery's consumer collects the connection (its transport forgets the
    connection parameters) and reconnects on a new one; a channel of the old one can still be
    asked for a Redis client afterwards: to restore its unacknowledged messages as it closes,
    or to acknowledge a task that finishes after the reconnect. kombu then raised
    AttributeError, which Celery takes as unrecoverable: the worker exited and had to be
    restarted (3 Redis restarts in 4 under tests/e2e/test_serve.py). As the connection error
    it is, Celery logs it and goes on. What that channel could not do is not lost: its
    unacknowledged messages stay in Redis's unacked index (redelivered after the visibility
    timeout), and the ledger's sweep republishes any delivery whose message is gone well
    before that."""

    connection: Any

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection this channel belonged to was lost and closed"
            )
        return super()._connparams(asynchronous)  # type: ignore[misc]


class RedisChannel(_CollectedConnectionIsLost, kombu_redis.Channel):
    pass


class SentinelChannel(_CollectedConnectionIsLost, kombu_redis.SentinelChannel):
    pass


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with RedisChannel (Celery's `broker_transport`,
    `crmhub-redis`)."""

    Channel = RedisChannel


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with SentinelChannel."""

    Channel = SentinelChannel


#: the names Celery's `broker_transport` gives them (workers/celery_app.py), and the scheme
#: the worker's log shows their URLs with
TRANSPORT_ALIASES["crmhub-redis"] = f"{__name__}:RedisTransport"
TRANSPORT_ALIASES["crmhub-sentinel"] = f"{__name__}:SentinelTransport"


def transport_for(broker_url: str) -> str | None:
    """crmhub's transport for a broker URL (Celery's `broker_transport`), None where kombu's
    own is kept: not Redis, or `rediss://`, whose TLS defaults kombu keys on that scheme's
    name, or a URL kombu reads a transport from itself (`redis+socket://`)."""
    scheme = broker_url.split("://", 1)[0]
    return {"redis": "crmhub-redis", "sentinel": "crmhub-sentinel"}.get(scheme)
