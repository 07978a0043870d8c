"""Which Redis the hub uses, and a client for it.

With CRMHUB_REDIS_URL set, that server. Without, the embedded redis-server that `crmhub serve`
started under the var directory (its address is kept in var/redis/address.json).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

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


#: a Redis behind Sentinel: `redis+sentinel://[:password@]host:port[,host:port...]/service[/db]`
SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelAddress:
    """Where the sentinels are, which monitored service (master name) is the hub's, which
    database, and the password of the Redis servers (not the sentinels')."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelAddress:
    """`redis+sentinel://h1:26379,h2:26379/mymaster/0` -> SentinelAddress; anything else
    wrong is a ConfigError naming the variable's expected shape."""
    rest = url[len(SENTINEL_SCHEME) + 3 :]
    netloc, _, path = rest.partition("/")
    auth, _, hosts = netloc.rpartition("@")
    password = unquote(auth.partition(":")[2]) if auth else None
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise _bad_sentinel_url(url)
        sentinels.append((host, int(port)))
    service, _, db = path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise _bad_sentinel_url(url)
    return SentinelAddress(tuple(sentinels), service, int(db or 0), password or None)


def _bad_sentinel_url(url: str) -> ConfigError:
    return ConfigError(
        [
            ConfigProblem(
                "environment",
                "CRMHUB_REDIS_URL",
                f"{describe(url)} is not a Sentinel URL: expected "
                "redis+sentinel://host:port[,host:port...]/service[/db]",
            )
        ]
    )


def connect(url: str) -> redis.Redis:
    """A client that fails fast: the receiver must answer 503 quickly, not hang a worker.

    One quick retry covers a dropped idle connection; anything longer is the sender's job
    (it retries after our 503) or the sweeper's. A `redis+sentinel://` URL gives a client
    of the service's current primary, asked of the sentinels at each (re)connect: after a
    failover the next connection goes to the new primary (a write on the old one, now a
    replica, drops the connection: redis-py's SentinelManagedConnection)."""
    options: dict[str, Any] = {
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    }
    if is_sentinel(url):
        address = parse_sentinel_url(url)
        sentinel = Sentinel(
            list(address.sentinels),
            sentinel_kwargs={"socket_timeout": 1, "socket_connect_timeout": 1},
        )
        client: redis.Redis = sentinel.master_for(
            address.service, db=address.db, password=address.password, **options
        )
        return client
    return redis.Redis.from_url(url, **options)


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """A Redis URL as kombu's broker URL and the transport options it needs: a Sentinel URL
    becomes kombu's `sentinel://h1:26379/0;sentinel://h2:26379/0` with `master_name`."""
    if not is_sentinel(url):
        return url, {}
    address = parse_sentinel_url(url)
    auth = f":{quote(address.password, safe='')}@" if address.password else ""
    hosts = ";".join(f"sentinel://{auth}{h}:{p}/{address.db}" for h, p in address.sentinels)
    return hosts, {"master_name": address.service}


def describe(url: str) -> str:
    """The URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    if is_sentinel(url):  # several host:port pairs: no urlsplit port to rebuild
        return re.sub(r"//[^@/]*@", "//***@", url)
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
