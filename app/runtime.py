"""What a receiver process holds: settings, configuration, the ledger and one Receiver per
source (its verifier and secrets resolved once at start, not per request)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from app.answer_counts import AnswerCounts
from connectors.validation import validated_config
from core.config import Config, MappingConfig, SourceConfig
from core.ledger import Ledger, open_ledger
from core.ledger.group import GroupAcceptor
from core.settings import Settings
from core.signatures import Scheme, SignedRequest, get_scheme


@dataclass(frozen=True)
class Receiver:
    source: SourceConfig
    scheme: Scheme
    secrets: Sequence[str]
    mappings: tuple[MappingConfig, ...]
    max_body_bytes: int
    redacted_headers: tuple[str, ...]  # never stored with the event

    def verify(self, request: SignedRequest, now: float) -> None:
        self.scheme.verify(request, self.secrets, self.source.verify, now)

    def signed_url(self, request_url: str, query_string: str) -> str:
        """The URL the sender signed: the configured public URL behind a proxy."""
        if not self.source.public_url:
            return request_url
        return (
            f"{self.source.public_url}?{query_string}" if query_string else self.source.public_url
        )


def _redacted(source: SourceConfig) -> tuple[str, ...]:
    """The scheme's signature headers, plus the one a generic `hmac` source names."""
    headers = get_scheme(source.verify.scheme).signature_headers
    return (*headers, source.verify.header) if source.verify.header else tuple(headers)


@dataclass(frozen=True)
class Hub:
    settings: Settings
    config: Config
    ledger: Ledger
    acceptor: GroupAcceptor  # the receiver's writes, group-committed
    receivers: Mapping[str, Receiver]
    answers: AnswerCounts  # what the receiver answered, for /metrics


def build_hub(
    settings: Settings, config: Config | None = None, ledger: Ledger | None = None
) -> Hub:
    if config is None:
        config = validated_config(settings)  # as `crmhub config check` checks it
    ledger = ledger or open_ledger(settings)
    receivers = _receivers(settings, config)
    return Hub(
        settings=settings,
        config=config,
        ledger=ledger,
        acceptor=GroupAcceptor(ledger),
        receivers=receivers,
        answers=AnswerCounts(ledger, set(receivers)),
    )


def reconfigured(hub: Hub, config: Config) -> Hub:
    """The same hub (its Redis connections, its group acceptor) with another configuration:
    what a configuration reload swaps in."""
    receivers = _receivers(hub.settings, config)
    hub.answers.count_sources(receivers)  # the same counters: their thread keeps running
    return replace(hub, config=config, receivers=receivers)


def _receivers(settings: Settings, config: Config) -> dict[str, Receiver]:
    return {
        name: Receiver(
            source=source,
            scheme=get_scheme(source.verify.scheme),
            secrets=tuple(settings.environ.get(var, "") for var in source.secret_env),
            mappings=config.mappings_for(name),
            max_body_bytes=source.max_body_bytes or settings.max_body_bytes,
            redacted_headers=_redacted(source),
        )
        for name, source in config.sources.items()
        if source.webhooks  # a source that only polls has no route: 404, never unsigned
    }
