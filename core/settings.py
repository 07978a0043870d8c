"""Deploy-specific and secret values, read from the environment once (prefix CRMHUB_).

Everything else (sources, connections, mappings) lives in the YAML file at CRMHUB_CONFIG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError, ConfigProblem
from core.operator_tokens import OperatorToken, parse_operator_tokens


def _int(env: Mapping[str, str], name: str, default: int, problems: list[ConfigProblem]) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(ConfigProblem("environment", name, f"expected an integer, got {raw!r}"))
        return default
    if value <= 0:
        problems.append(
            ConfigProblem("environment", name, f"expected a positive integer, got {value}")
        )
        return default
    return value


def _port(env: Mapping[str, str], name: str, default: int, problems: list[ConfigProblem]) -> int:
    value = _int(env, name, default, problems)
    if value > 65535:
        problems.append(
            ConfigProblem("environment", name, f"expected a TCP port (1-65535), got {value}")
        )
        return default
    return value


def _seconds(
    env: Mapping[str, str], name: str, default: float, problems: list[ConfigProblem]
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(ConfigProblem("environment", name, f"expected seconds, got {raw!r}"))
        return default
    if not 0 <= value < float("inf"):
        problems.append(
            ConfigProblem("environment", name, f"expected zero or more seconds, got {raw}")
        )
        return default
    return value


#: what CRMHUB_ARCHIVE_URL may name (core/archive/database.py)
ARCHIVE_SCHEMES = ("sqlite", "postgresql", "postgres")


def _archive_url(env: Mapping[str, str], problems: list[ConfigProblem]) -> str | None:
    url = env.get("CRMHUB_ARCHIVE_URL") or None
    if url and url.split(":", 1)[0] not in ARCHIVE_SCHEMES:
        problems.append(
            ConfigProblem(
                "environment",
                "CRMHUB_ARCHIVE_URL",
                f"expected postgresql://user@host:port/database or sqlite:///path/file.db, "
                f"got {url.split(':', 1)[0]}:...",
            )
        )
        return None
    return url


def _choice(
    env: Mapping[str, str], name: str, allowed: tuple[str, ...], problems: list[ConfigProblem]
) -> str:
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        problems.append(
            ConfigProblem(
                "environment", name, f"expected one of {', '.join(allowed)}, got {value!r}"
            )
        )
        return allowed[0]
    return value


#: the broker URL schemes that name RabbitMQ (kombu's py-amqp transport)
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None  # None: the embedded redis-server under var_dir
    broker_url: str | None = None  # None: same as the ledger's Redis
    # after each accept, WAIT for this many replicas to have it before answering 2xx (0: no)
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000  # how long that WAIT may take; then 503
    config_path: Path = Path("crmhub.yaml")
    var_dir: Path = Path("var")
    key_prefix: str = "crmhub"
    metrics_token: str | None = None  # None: /metrics is open (to whoever reaches it)
    sentry_dsn: str | None = None
    alert_webhook_url: str | None = None
    alert_interval_seconds: int = 5  # how often the scheduler evaluates alerts and sends them
    public_url: str | None = None  # where operators reach the hub: links in alerts
    log_format: str = "text"  # text | json
    sentry_scrub_fields: frozenset[str] = frozenset()  # more personal fields Sentry never gets
    host: str = "127.0.0.1"
    port: int = 8000
    worker_concurrency: int = 2
    lease_seconds: int = 60
    # a polling source's lock (workers/poller.py): how long it outlives a poller killed
    # mid-run; a poll run lists for at most a quarter of it
    poll_lock_seconds: int = 80
    # the drain (workers/delivery.py): one task writes up to this many ready deliveries of its
    # connection (its own included; 1: one per task), within this many seconds
    drain_max: int = 50
    drain_seconds: float = 0.5
    republish_after_seconds: int = 60
    dedupe_ttl_seconds: int = 30 * 24 * 3600
    max_body_bytes: int = 1024 * 1024
    request_read_timeout_seconds: int = 10
    demo_port: int = 8900  # `crmhub serve --demo`: the generic REST CRM fake
    demo_hubspot_port: int = 8901  # `crmhub serve --demo`: the fake HubSpot
    # the operator API and dashboard (core/operator_tokens.py): none, every /api/v1 call is 401
    operator_tokens: tuple[OperatorToken, ...] = field(default=(), repr=False)
    secret_key: str | None = field(default=None, repr=False)  # signs dashboard sessions
    # hot and cold (core/archive/): how long done events stay in Redis, where they go then
    hot_retention_seconds: int = 86400
    archive_url: str | None = None  # None: SQLite at var_dir/archive.sqlite3
    archive_retention_days: int = 90
    archive_batch_size: int = 500  # events per move (one read, one archive write, one evict)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        problems: list[ConfigProblem] = []
        settings = cls(
            redis_url=env.get("CRMHUB_REDIS_URL") or None,
            broker_url=env.get("CRMHUB_BROKER_URL") or None,
            redis_wait_replicas=(
                _int(env, "CRMHUB_REDIS_WAIT_REPLICAS", 0, problems)
                if env.get("CRMHUB_REDIS_WAIT_REPLICAS") not in (None, "", "0")
                else 0
            ),
            redis_wait_timeout_ms=_int(env, "CRMHUB_REDIS_WAIT_TIMEOUT_MS", 1000, problems),
            config_path=Path(env.get("CRMHUB_CONFIG") or "crmhub.yaml"),
            var_dir=Path(env.get("CRMHUB_VAR_DIR") or "var"),
            key_prefix=env.get("CRMHUB_KEY_PREFIX") or "crmhub",
            metrics_token=env.get("CRMHUB_METRICS_TOKEN") or None,
            sentry_dsn=env.get("SENTRY_DSN") or None,
            alert_webhook_url=env.get("CRMHUB_ALERT_WEBHOOK_URL") or None,
            alert_interval_seconds=_int(env, "CRMHUB_ALERT_INTERVAL_SECONDS", 5, problems),
            public_url=(env.get("CRMHUB_PUBLIC_URL") or "").rstrip("/") or None,
            sentry_scrub_fields=frozenset(
                f.strip().lower()
                for f in (env.get("CRMHUB_SENTRY_SCRUB_FIELDS") or "").split(",")
                if f.strip()
            ),
            log_format=_choice(env, "CRMHUB_LOG_FORMAT", ("text", "json"), problems),
            host=env.get("CRMHUB_HOST") or "127.0.0.1",
            port=_int(env, "CRMHUB_PORT", 8000, problems),
            worker_concurrency=_int(env, "CRMHUB_WORKER_CONCURRENCY", 2, problems),
            lease_seconds=_int(env, "CRMHUB_LEASE_SECONDS", 60, problems),
            poll_lock_seconds=_int(env, "CRMHUB_POLL_LOCK_SECONDS", 80, problems),
            drain_max=_int(env, "CRMHUB_DRAIN_MAX", 50, problems),
            drain_seconds=_seconds(env, "CRMHUB_DRAIN_SECONDS", 0.5, problems),
            republish_after_seconds=_int(env, "CRMHUB_REPUBLISH_AFTER_SECONDS", 60, problems),
            dedupe_ttl_seconds=_int(env, "CRMHUB_DEDUPE_TTL_SECONDS", 30 * 24 * 3600, problems),
            max_body_bytes=_int(env, "CRMHUB_MAX_BODY_BYTES", 1024 * 1024, problems),
            request_read_timeout_seconds=_int(
                env, "CRMHUB_REQUEST_READ_TIMEOUT_SECONDS", 10, problems
            ),
            demo_port=_port(env, "CRMHUB_DEMO_PORT", 8900, problems),
            demo_hubspot_port=_port(env, "CRMHUB_DEMO_HUBSPOT_PORT", 8901, problems),
            operator_tokens=parse_operator_tokens(env, problems),
            secret_key=env.get("CRMHUB_SECRET_KEY") or None,
            hot_retention_seconds=_int(env, "CRMHUB_HOT_RETENTION_SECONDS", 86400, problems),
            archive_url=_archive_url(env, problems),
            archive_retention_days=_int(env, "CRMHUB_ARCHIVE_RETENTION_DAYS", 90, problems),
            archive_batch_size=_int(env, "CRMHUB_ARCHIVE_BATCH_SIZE", 500, problems),
            environ=env,
        )
        if problems:
            raise ConfigError(problems)
        return settings

    def with_redis(self, url: str) -> Settings:
        """The same settings pointed at a resolved Redis (the embedded one, say)."""
        from dataclasses import replace

        return replace(self, redis_url=url)

    @property
    def archive_location(self) -> str:
        """The archive's URL: CRMHUB_ARCHIVE_URL, else a SQLite file under the var dir."""
        return self.archive_url or f"sqlite:///{(self.var_dir / 'archive.sqlite3').absolute()}"

    @property
    def embedded_redis_dir(self) -> Path:
        return self.var_dir / "redis"

    @property
    def celery_queue(self) -> str:
        return f"{self.key_prefix}.deliveries"

    @property
    def control_queue(self) -> str:
        """Scheduler tasks: kept apart so a delivery backlog never delays the sweeper."""
        return f"{self.key_prefix}.control"

    @property
    def broker_is_amqp(self) -> bool:
        """CRMHUB_BROKER_URL names an AMQP broker (RabbitMQ): the ledger's scripts then put
        their hints in an outbox that is relayed to it after each script (core/amqp.py)."""
        scheme = (self.broker_url or "").partition("://")[0].lower()
        return scheme in AMQP_SCHEMES

    @property
    def celery_keyprefix(self) -> str:
        """Kombu's global_keyprefix: the broker's keys live under ours, so tests and several
        hubs can share one Redis without touching each other's data."""
        return f"{self.key_prefix}:q:"
