"""RabbitMQ as Celery's broker: the hints, published with confirms to quorum queues.

With `CRMHUB_BROKER_URL=amqp://...` the ledger's scripts cannot publish (a Lua script reaches
Redis only), so they leave each hint, in the same atomic step as before, in an outbox list in
Redis; whoever ran the script then relays the outbox to RabbitMQ (core/ledger/store.py:
`Ledger.relay_outbox`), the receiver right after its record. A hint is taken out of the
outbox only once RabbitMQ confirmed it (publisher confirms); a publish that fails puts the
rest back for the next relay, and the sweeper (every 2 s) relays whatever is left. A process
killed between taking hints and publishing them loses those hints, exactly as a lost Celery
message is lost today: the sweeper republishes a delivery still pending after
`CRMHUB_REPUBLISH_AFTER_SECONDS`.

The queues are quorum queues (replicated, durable; `x-queue-type: quorum`), declared with the
same arguments here and by Celery's worker (workers/celery_app.py: `amqp_queues`).
kombu and py-amqp errors become BrokerUnavailable here, once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence

import amqp.exceptions
import kombu
import kombu.exceptions

from core.errors import BrokerUnavailable

log = logging.getLogger("crmhub.broker")

#: the queue arguments of every queue the hub uses on RabbitMQ
QUORUM = {"x-queue-type": "quorum"}
#: seconds to wait for RabbitMQ's connection (the receiver waits this long at most per relay)
CONNECT_TIMEOUT_SECONDS = 2.0
#: seconds to wait for RabbitMQ to confirm what one call published
CONFIRM_TIMEOUT_SECONDS = 5.0
#: after a failed publish, this process leaves the outbox to others (and to its next try
#: after this long), so an unreachable broker does not cost every webhook a connect timeout
BACKOFF_SECONDS = 1.0


def amqp_queue(name: str) -> kombu.Queue:
    """A durable quorum queue bound to the default exchange by its name (what the relay
    publishes to) and to a direct exchange of its name (what Celery's routing publishes to)."""
    return kombu.Queue(
        name,
        kombu.Exchange(name, type="direct", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments=QUORUM,
    )


class AmqpPublisher:
    """Publishes hints (Celery messages as the ledger's scripts build them) to one queue.
    A call publishes them all, then waits once for RabbitMQ to confirm them (publisher
    confirms, pipelined: a quorum queue confirms after its replicas wrote the message, ~4 ms
    here, which one wait per message would pay every time). One per process, shared by its
    threads (one call at a time: the others' hints go out in it); made again after a fork."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self._lock = threading.Lock()
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._pid = 0
        self._resting_until = 0.0
        self._sent = 0  # the channel's last delivery tag (confirms count from 1)
        self._confirmed = 0  # every tag up to this one is confirmed
        self._refused = False  # RabbitMQ nacked one

    def resting(self) -> bool:
        """A publish failed less than BACKOFF_SECONDS ago: leave the outbox for now."""
        return time.monotonic() < self._resting_until

    def publish(self, messages: Sequence[str | bytes]) -> int:
        """Publish `messages` in order and wait until RabbitMQ confirmed every one; returns
        how many. On any failure raises BrokerUnavailable with `.published`: how many of the
        first ones were confirmed (the rest may or may not have reached it)."""
        with self._lock:
            first = self._sent
            try:
                producer = self._ready_producer()
                first = self._sent
                for raw in messages:
                    envelope = json.loads(raw)
                    producer.publish(
                        envelope["body"],
                        exchange="",
                        routing_key=self.queue,
                        headers=envelope["headers"],
                        content_type=envelope["content-type"],
                        # the hint leaves out what is kombu's default (core/queue.py)
                        content_encoding=envelope.get("content-encoding", "utf-8"),
                        correlation_id=envelope["headers"]["id"],
                        delivery_mode=2,  # persistent
                        retry=False,
                    )
                    self._sent += 1
                self._await_confirms()
            except (OSError, kombu.exceptions.KombuError, amqp.exceptions.AMQPError) as exc:
                confirmed = max(0, min(self._confirmed, self._sent) - first)
                self._drop()
                self._resting_until = time.monotonic() + BACKOFF_SECONDS
                error = BrokerUnavailable(f"RabbitMQ did not take a hint: {exc}")
                error.published = confirmed  # type: ignore[attr-defined]
                raise error from exc
            return len(messages)

    def _await_confirms(self) -> None:
        assert self._connection is not None
        deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
        while self._confirmed < self._sent and not self._refused:
            left = deadline - time.monotonic()
            if left <= 0:
                raise amqp.exceptions.RecoverableConnectionError("no confirm in time")
            try:
                self._connection.drain_events(timeout=left)
            except TimeoutError:
                continue
        if self._refused:
            raise amqp.exceptions.RecoverableConnectionError("RabbitMQ refused (nacked) a hint")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        # acks may come for several tags at once (`multiple`) and out of order otherwise;
        # counting the highest is enough for "all confirmed", as a nack fails the call
        self._confirmed = max(self._confirmed, delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused = True

    def _ready_producer(self) -> kombu.Producer:
        if self._pid != os.getpid():  # forked: the parent's socket is not ours
            self._connection = self._producer = None
            self._pid = os.getpid()
        if self._producer is None:
            connection = kombu.Connection(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            connection.connect()
            channel = connection.channel()
            amqp_queue(self.queue).bind(channel).declare()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._sent = self._confirmed = 0
            self._refused = False
            self._connection = connection
            self._producer = kombu.Producer(channel)
        return self._producer

    def _drop(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a broken connection may fail to close too
                log.debug("closing a broken broker connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._drop()
