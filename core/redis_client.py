"""Which Redis the hub uses, and a client for it.

With CRMHUB_REDIS_URL set, that server. Without, the embedded redis-server that `crmhub serve`
started under the var directory (its address is kept in var/redis/address.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from core.errors import ConfigError, ConfigProblem
from core.settings import Settings

ADDRESS_FILE = "address.json"


def embedded_address_file(settings: Settings) -> Path:
    return settings.embedded_redis_dir / ADDRESS_FILE


def resolve_redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    address = embedded_address_file(settings)
    try:
        return str(json.loads(address.read_text())["url"])
    except (OSError, ValueError, KeyError):
        raise ConfigError(
            [
                ConfigProblem(
                    "environment",
                    "CRMHUB_REDIS_URL",
                    f"unset, and no embedded Redis is running from {settings.var_dir.resolve()} "
                    f"(no {address}); start `crmhub serve` in this directory or set "
                    "CRMHUB_REDIS_URL",
                )
            ]
        ) from None


def connect(url: str) -> redis.Redis:
    """A client that fails fast: the receiver must answer 503 quickly, not hang a worker.

    One quick retry covers a dropped idle connection; anything longer is the sender's job
    (it retries after our 503) or the sweeper's.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    )


def describe(url: str) -> str:
    """The URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
