"""The drain's rules, kept apart from the delivery it repeats (workers/delivery.py).

After its own delivery a task claims the next ready deliveries of the same connection
(Ledger.claim_next) and writes them one after another, so that a backlog costs one Celery task
per `CRMHUB_DRAIN_MAX` deliveries rather than one each: Celery's own work per message (~1 ms of
CPU here) was most of what the ledger's guarantees cost in throughput. Every per-record rule
holds because each drained delivery is claimed exactly as its own message would claim it;
what is left here is when to stop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.config import Config
from core.settings import Settings
from core.vocabulary import AttemptOutcome

#: outcomes after which the target is still answering: the drain goes on. Anything else
#: (a retry, a 429's deferral, a pause, a lost lease) stops it: the deliveries still waiting
#: meet that through their own messages, one by one, as without the drain.
_GOES_ON = frozenset({AttemptOutcome.DELIVERED, AttemptOutcome.SUPERSEDED, AttemptOutcome.DEAD})


def objects_of(config: Config, connection: str) -> list[str]:
    """The objects the configuration's mappings write through `connection` (each has a
    ready set in the ledger), in a stable order."""
    return sorted({m.object for m in config.mappings.values() if m.connection == connection})


def goes_on(outcomes: Iterable[str]) -> bool:
    """Whether the drain may claim more after an attempt with these outcomes: only while the
    target takes writes (a data error is that record's own problem, not the target's)."""
    return all(outcome in _GOES_ON for outcome in outcomes)


@dataclass
class Budget:
    """How much more one task may take: `CRMHUB_DRAIN_MAX` deliveries (its own included), for
    at most `CRMHUB_DRAIN_SECONDS` from its start, so that other connections' messages are not
    kept waiting behind a long drain."""

    max_deliveries: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    @classmethod
    def of(cls, settings: Settings) -> Budget:
        return cls(settings.drain_max, settings.drain_seconds)

    @property
    def enabled(self) -> bool:
        return self.max_deliveries > 1

    def left(self) -> bool:
        return self.done < self.max_deliveries and time.monotonic() - self.started < self.seconds
