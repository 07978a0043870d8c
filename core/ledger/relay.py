"""The hints' way to an AMQP broker: the ledger's outbox, relayed after each script.

With a Redis broker a script pushes each hint (a Celery message) onto the Celery queue in
the same atomic step as the state change. With RabbitMQ (core/amqp.py) the scripts push it
onto an outbox list instead, in the same step, and the process that ran the script relays
the outbox right after: takes the oldest hints (RPOP), publishes them with confirms, and puts
back what RabbitMQ did not confirm. Any process may relay any hint (a hint is a delivery id,
the same bytes whoever published it); the sweeper relays what is left every 2 s. A process
that dies between taking hints and publishing them loses them; the sweeper republishes a
delivery still pending after CRMHUB_REPUBLISH_AFTER_SECONDS, as for any lost message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

import redis

from core.errors import BrokerUnavailable, LedgerUnavailable
from core.ledger.scripts import SCRIPTS, lua_source
from core.ledger.translate import translate_redis_errors

log = logging.getLogger("crmhub.broker")

#: hints taken from the outbox per round trip
RELAY_BATCH = 500

_PUBLISHES = re.compile(r"\b(publish|advance)\(")
#: the scripts that can publish a hint (directly, or by starting a record's next write)
PUBLISHING_SCRIPTS = frozenset(
    name
    for name, parts in SCRIPTS.items()
    if any(_PUBLISHES.search(lua_source(part)) for part in (*parts, name))
)


class HintPublisher(Protocol):
    def publish(self, messages: Sequence[bytes]) -> int: ...

    def resting(self) -> bool: ...


class HintRelay:
    """Moves hints from the ledger's outbox (`outbox_key`, a list the scripts LPUSH onto) to
    the broker, oldest first."""

    def __init__(self, client: redis.Redis, outbox_key: str, publisher: HintPublisher) -> None:
        self.redis = client
        self.outbox_key = outbox_key
        self.publisher = publisher

    def relay(self) -> int:
        """Publish what waits in the outbox; returns how many hints went. A broker that does
        not take them leaves them in the outbox (BrokerUnavailable is logged, not raised)."""
        if self.publisher.resting():
            return 0
        total = 0
        while True:
            with translate_redis_errors():
                taken: list[bytes] = self.redis.rpop(self.outbox_key, RELAY_BATCH) or []  # type: ignore[assignment]
            if not taken:
                return total
            try:
                total += self.publisher.publish(taken)
            except BrokerUnavailable as exc:
                rest = taken[getattr(exc, "published", 0) :]
                with translate_redis_errors():
                    # back at the consuming end, oldest last, as they were
                    self.redis.rpush(self.outbox_key, *reversed(rest))
                log.warning("%s; %d hints left in the outbox for the next relay", exc, len(rest))
                return total + getattr(exc, "published", 0)
            if len(taken) < RELAY_BATCH:
                return total

    def relay_quietly(self) -> None:
        """After a script: its change is made and stands whatever happens here (the hints
        wait in the outbox for the next relay)."""
        try:
            self.relay()
        except LedgerUnavailable as exc:
            log.warning("relaying hints: %s", exc)

    def waiting(self) -> int:
        with translate_redis_errors():
            return int(self.redis.llen(self.outbox_key))
