"""What a worker process holds: configuration, the ledger, one connector per connection.

Built once per process (after the prefork), on first use, from the same env and YAML as the
receiver, and built again (sharing the Redis connections) when `crmhub reload` announces a new
configuration (workers.runtime_holder). Connectors keep their HTTP connections alive between
deliveries.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import redis

from connectors.base import Connector
from connectors.registry import CONNECTORS
from connectors.validation import validated_config
from core.config import Config
from core.ledger import Ledger, RateSpec, open_ledger
from core.settings import Settings


@dataclass
class WorkerRuntime:
    settings: Settings
    config: Config
    ledger: Ledger  # with the OAuth tokens and the alert outbox beside it
    connector_factory: dict[str, type[Connector]] = field(default_factory=lambda: CONNECTORS)
    _connectors: dict[str, Connector] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(
        cls, settings: Settings, *, config: Config | None = None, client: redis.Redis | None = None
    ) -> WorkerRuntime:
        return cls(
            settings=settings,
            config=config or validated_config(settings),
            ledger=open_ledger(settings, client),
        )

    def reconfigured(self, config: Config) -> WorkerRuntime:
        """The same runtime (its Redis connections) with another configuration and fresh
        connectors: what a configuration reload swaps in."""
        return WorkerRuntime(
            settings=self.settings,
            config=config,
            ledger=self.ledger,
            connector_factory=self.connector_factory,
        )

    @functools.cached_property
    def rate_limits(self) -> dict[str, RateSpec]:
        """(requests, per_seconds, burst) of each connection that has a rate limit."""
        return {
            name: (c.rate_limit.requests, c.rate_limit.per_seconds, c.rate_limit.burst)
            for name, c in self.config.connections.items()
            if c.rate_limit
        }

    def connector(self, name: str) -> Connector:
        with self._lock:
            if name not in self._connectors:
                connection = self.config.connections[name]
                factory = self.connector_factory[connection.connector]
                self._connectors[name] = factory(
                    connection,
                    self.settings.environ,
                    tokens=self.ledger.tokens,
                    memo=self.ledger.memo,
                )
            return self._connectors[name]

    def close(self) -> None:
        for connector in self._connectors.values():
            connector.close()
        self._connectors.clear()
