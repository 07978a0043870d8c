"""Redis failover, the parts a unit test can hold: `redis+sentinel://` URLs (for the ledger
and, through kombu's sentinel transport, the broker) and CRMHUB_REDIS_WAIT_REPLICAS (the
accept and a WAIT in one round trip; 503 when the replicas do not confirm in time).
The failover itself: tests/integration/test_redis_failover.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from hubtest import RECEIVER_CONFIG, RECEIVER_ENV, signed, stripe_event

from app import create_app
from core.errors import ConfigError
from core.redis_client import (
    SentinelAddress,
    connect,
    describe,
    kombu_broker,
    parse_sentinel_url,
)
from core.settings import Settings


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    assert parse_sentinel_url("redis+sentinel://h1:26379,h2:26380/mymaster/2") == (
        SentinelAddress((("h1", 26379), ("h2", 26380)), "mymaster", 2, None)
    )
    assert parse_sentinel_url("redis+sentinel://:s%40cret@h1:26379/hub") == (
        SentinelAddress((("h1", 26379),), "hub", 0, "s@cret")
    )
    secret = "redis+sentinel://:s%40cret@h1:26379/hub"
    assert describe(secret) == "redis+sentinel://***@h1:26379/hub"


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://h1/mymaster", "redis+sentinel://h1:26379/", "redis+sentinel://h1:1/m/x"],
)
def test_a_malformed_sentinel_url_says_what_it_should_look_like(url: str) -> None:
    with pytest.raises(ConfigError, match=r"redis\+sentinel://host:port"):
        parse_sentinel_url(url)


def test_the_broker_on_sentinel_is_kombus_sentinel_transport_with_the_master_name() -> None:
    assert kombu_broker("redis+sentinel://h1:26379,h2:26379/mymaster/0") == (
        "sentinel://h1:26379/0;sentinel://h2:26379/0",
        {"master_name": "mymaster"},
    )
    assert kombu_broker("redis://127.0.0.1:6379/0") == ("redis://127.0.0.1:6379/0", {})


def test_celery_on_a_sentinel_redis_uses_the_sentinel_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "redis+sentinel://127.0.0.1:9,127.0.0.1:10/hubmaster/0"
    monkeypatch.setenv("CRMHUB_REDIS_URL", url)
    from workers.celery_app import make_celery

    conf = make_celery(Settings(redis_url=url, key_prefix="hub")).conf  # not connected here
    assert conf.broker_url.startswith("sentinel://127.0.0.1:9/0")
    assert conf.broker_transport_options["master_name"] == "hubmaster"
    assert conf.broker_transport_options["global_keyprefix"] == "hub:q:"


def test_a_sentinel_client_asks_the_sentinels_for_the_primary() -> None:
    client = connect("redis+sentinel://127.0.0.1:9/hubmaster/3")  # nothing listens: lazy
    pool = client.connection_pool
    assert pool.service_name == "hubmaster"  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 3
    with pytest.raises(redis.ConnectionError):  # no sentinel answers: no primary to be had
        client.ping()


def test_wait_replicas_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).redis_wait_replicas == 0
    settings = Settings.from_env(
        {"CRMHUB_REDIS_WAIT_REPLICAS": "1", "CRMHUB_REDIS_WAIT_TIMEOUT_MS": "250"}
    )
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout_ms) == (1, 250)
    with pytest.raises(ConfigError, match="CRMHUB_REDIS_WAIT_REPLICAS"):
        Settings.from_env({"CRMHUB_REDIS_WAIT_REPLICAS": "one"})


@pytest.fixture
def settings(write_config: Callable[..., Path], key_prefix: str) -> Settings:
    return Settings.from_env(
        {
            "CRMHUB_CONFIG": str(write_config(RECEIVER_CONFIG)),
            "CRMHUB_KEY_PREFIX": key_prefix,
            "CRMHUB_REDIS_URL": "redis://unused",
            "CRMHUB_REDIS_WAIT_REPLICAS": "1",
            "CRMHUB_REDIS_WAIT_TIMEOUT_MS": "20",
            **RECEIVER_ENV,
        }
    )


def test_an_accept_no_replica_confirms_is_503_and_its_retry_too(
    settings: Settings, real_redis: redis.Redis
) -> None:
    """A Redis without replicas never confirms: the webhook is recorded on the primary but
    answered 503 (the sender retries), and its retry, a duplicate, is not answered 200
    either (WAIT covers the connection's every write, the duplicate's count included)."""
    if int(real_redis.info("replication")["connected_slaves"]):
        pytest.skip("the test Redis has replicas: it would confirm")
    client = create_app(settings, redis_client=real_redis).test_client()
    secret = RECEIVER_ENV["STRIPE_WEBHOOK_SECRET"]
    body, headers = signed("stripe", stripe_event("evt_wait_1"), secret)
    for _ in range(2):
        response = client.post("/webhooks/stripe", data=body, headers=headers)
        assert response.status_code == 503
        assert response.json is not None and response.json["error"] == "replicas_unconfirmed"
        assert int(response.headers["Retry-After"]) > 0

    # recorded once on the primary, waiting for the replicas the sender's retries wait for
    assert real_redis.zcard(f"{settings.key_prefix}:events") == 1  # the events index
