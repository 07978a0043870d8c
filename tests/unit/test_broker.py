"""The worker's broker connection (workers/broker.py) on a real Redis: a channel of a connection
Celery has collected after losing the broker says the connection is lost (a connection error,
which Celery logs and goes on from) instead of raising AttributeError (which Celery took as
unrecoverable: the worker exited, in 3 Redis restarts of 4 under tests/e2e/test_serve.py)."""

from __future__ import annotations

import logging
from typing import Any

import kombu
import pytest
import redis

from workers.broker import PromptReconnect, transport_for


def collected_with_a_message_unacked(url: str, prefix: str, transport: str | None) -> Any:
    """A connection that took one message and had not acknowledged it when the broker was
    lost, left as Celery's consumer leaves it: the channel had dropped its pools as it began
    to close, and the connection was collected (its transport forgot its parameters); the
    message."""
    conn = PromptReconnect(
        url, transport=transport, transport_options={"global_keyprefix": f"{prefix}:"}
    )
    queue = kombu.Queue(f"{prefix}-q")
    with kombu.Producer(conn.default_channel) as producer:
        producer.publish({"delivery": "dlv_1"}, routing_key=queue.name, declare=[queue])
    got: list[Any] = []
    consumer = kombu.Consumer(
        conn.default_channel, queues=[queue], callbacks=[lambda _, m: got.append(m)]
    )
    consumer.consume()
    conn.drain_events(timeout=5)
    [message] = got
    message.channel._disconnect_pools()
    conn._do_close_transport()
    return conn, message


def test_a_task_acknowledged_after_the_broker_was_lost_is_a_connection_error(
    real_redis_url: str,
    key_prefix: str,
    real_redis: redis.Redis,  # deletes the broker's keys under key_prefix afterwards
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, message = collected_with_a_message_unacked(real_redis_url, key_prefix, "crmhub-redis")
    with caplog.at_level(logging.CRITICAL):
        # how Celery acknowledges a finished task: errors it knows are logged, not raised
        message.ack_log_error(logging.getLogger("test"), conn.connection_errors)
    assert "Couldn't ack" in caplog.text and "was lost and closed" in caplog.text
    conn.close()  # and closing it, which restores unacknowledged messages, raises nothing


def test_kombus_own_channel_raised_attribute_error_there(
    real_redis_url: str, key_prefix: str, real_redis: redis.Redis
) -> None:
    """Why the transport is ours: kombu's Redis channel, in the same state."""
    conn, message = collected_with_a_message_unacked(real_redis_url, key_prefix, None)
    with pytest.raises(AttributeError, match="hostname"):
        message.ack_log_error(logging.getLogger("test"), conn.connection_errors)
    with pytest.raises(AttributeError, match="hostname"):
        conn.close()


def test_the_celery_app_uses_it_for_a_redis_broker_and_names_it_in_its_urls(
    real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMHUB_REDIS_URL", real_redis_url)  # for the module's own app
    from core.settings import Settings
    from workers.celery_app import make_celery

    app = make_celery(Settings.from_env({"CRMHUB_REDIS_URL": real_redis_url}))
    with app.connection_for_write() as conn:
        assert conn.transport.Channel.__module__ == "workers.broker"
        assert conn.as_uri().startswith("crmhub-redis://")


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", "crmhub-redis"),
        ("sentinel://127.0.0.1:26379/0;sentinel://127.0.0.1:26380/0", "crmhub-sentinel"),
        ("rediss://cache.example.com:6380/0", None),  # kombu's TLS defaults go by the scheme
        ("amqp://guest:guest@127.0.0.1:5672//", None),
    ],
)
def test_the_transport_is_ours_for_redis_and_sentinel_urls_only(
    url: str, transport: str | None
) -> None:
    assert transport_for(url) == transport
