"""RabbitMQ as the broker (core/amqp.py, core/ledger/relay.py): the scripts put their hints
in the ledger's outbox, in the same atomic step as the change, and the process that ran the
script relays them right after; what the broker does not confirm stays for the next relay."""

from __future__ import annotations

import json
from collections.abc import Sequence

import fakeredis
import pytest

from core.errors import BrokerUnavailable
from core.ledger import Ledger, NewDelivery, NewEvent
from core.ledger.relay import PUBLISHING_SCRIPTS, HintRelay
from core.queue import HintQueue
from core.settings import Settings

T0 = 1_750_000_000.0


class FakeBroker:
    """Takes hints like RabbitMQ with confirms; `fail_after`: refuse from that many on."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.fail_after: int | None = None
        self.rest = False

    def publish(self, messages: Sequence[bytes]) -> int:
        for n, raw in enumerate(messages):
            if self.fail_after is not None and len(self.published) >= self.fail_after:
                error = BrokerUnavailable("connection refused")
                error.published = n  # type: ignore[attr-defined]
                raise error
            self.published.append(json.loads(raw)["body"])
        return len(messages)

    def resting(self) -> bool:
        return self.rest

    def ids(self) -> list[str]:
        return [json.loads(body)[0][0] for body in self.published]


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def ledger(broker: FakeBroker) -> Ledger:
    queue = HintQueue("t.deliveries", "t:q:", outbox=True)
    ledger = Ledger(fakeredis.FakeRedis(), prefix="t", queue=queue)
    ledger.relay = HintRelay(ledger.redis, queue.key, broker)
    return ledger


def accept(ledger: Ledger, n: int) -> str:
    delivery = NewDelivery(
        id=f"dlv_{n}",
        mapping="m",
        connection="crm",
        object="contacts",
        record_key=f"crm:contacts:email={n}",
        occurred_ms=None,
    )
    event = NewEvent(
        id=f"evt_{n}",
        source="stripe",
        type="customer.created",
        external_id=f"ext_{n}",
        received_at=T0,
        occurred_at=None,
        headers={},
        body="{}",
        deliveries=(delivery,),
    )
    ledger.accept([event], T0)
    return delivery.id


def outbox(ledger: Ledger) -> list[str]:
    raw = ledger.redis.lrange(ledger.queue.key, 0, -1)
    return [json.loads(json.loads(m)["body"])[0][0] for m in reversed(raw)]  # oldest first


def test_an_accepted_delivery_is_published_to_the_broker_right_after_its_record(
    ledger: Ledger, broker: FakeBroker
) -> None:
    ids = [accept(ledger, n) for n in range(3)]
    assert broker.ids() == ids
    assert outbox(ledger) == []
    # nothing went to a Redis list Celery would consume
    assert not ledger.redis.exists("t:q:t.deliveries")
    # the message is the one Celery's worker reads: the task and its id, the delivery id
    assert json.loads(broker.published[0]) == [[ids[0]], {}, {}]


def test_what_the_broker_does_not_confirm_waits_in_the_outbox_in_order(
    ledger: Ledger, broker: FakeBroker
) -> None:
    broker.fail_after = 1
    ids = [accept(ledger, n) for n in range(4)]
    assert broker.ids() == ids[:1]
    assert outbox(ledger) == ids[1:]  # recorded all the same; the hints wait, oldest first

    broker.fail_after = None
    assert ledger.relay is not None and ledger.relay.relay() == 3
    assert broker.ids() == ids and outbox(ledger) == []


def test_a_resting_publisher_leaves_the_outbox_to_the_sweeper(
    ledger: Ledger, broker: FakeBroker
) -> None:
    broker.rest = True
    d = accept(ledger, 1)
    assert broker.ids() == [] and outbox(ledger) == [d]
    broker.rest = False
    ledger.sweep(T0 + 1, republish_after_seconds=60)  # the scheduler's tick relays it
    assert broker.ids() == [d]


def test_the_scripts_that_can_publish_are_followed_by_a_relay() -> None:
    assert {"accept", "finish", "sweep", "resume", "replay", "claim"} <= PUBLISHING_SCRIPTS
    assert "evict" not in PUBLISHING_SCRIPTS


@pytest.mark.parametrize(
    ("url", "amqp"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/hub", True),
        ("amqps://u:p@mq.example.com/hub", True),
        ("redis://127.0.0.1:6379/0", False),
        (None, False),
    ],
)
def test_an_amqp_broker_url_turns_the_outbox_on(url: str | None, amqp: bool) -> None:
    assert Settings(broker_url=url).broker_is_amqp is amqp


def test_on_rabbitmq_celery_uses_quorum_queues_and_publisher_confirms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # workers.celery_app builds its app from the environment as it is imported: never the
    # embedded Redis (nothing connects here)
    monkeypatch.setenv("CRMHUB_REDIS_URL", "redis://127.0.0.1:9/0")
    from workers.celery_app import make_celery

    settings = Settings(
        redis_url="redis://127.0.0.1:9/0",
        broker_url="amqp://guest:guest@127.0.0.1:5672/hub",
        key_prefix="hub",
    )
    conf = make_celery(settings).conf
    queues = {q.name: q for q in conf.task_queues}
    assert set(queues) == {"hub.deliveries", "hub.control"}
    assert all(q.queue_arguments == {"x-queue-type": "quorum"} for q in queues.values())
    assert all(q.durable for q in queues.values())
    assert conf.broker_transport_options["confirm_publish"] is True
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1


def test_with_rabbitmq_unreachable_the_event_is_recorded_and_its_hint_kept() -> None:
    """The real publisher against a port nothing listens on: the accept stands, the hint
    waits in the outbox, and the process leaves the broker alone for a moment instead of
    paying a connect per webhook."""
    from core.ledger import open_ledger

    settings = Settings(
        redis_url="redis://unused",
        broker_url="amqp://guest:guest@127.0.0.1:1/nowhere",
        key_prefix="t",
    )
    ledger = open_ledger(settings, fakeredis.FakeRedis())
    assert ledger.relay is not None
    d = accept(ledger, 1)
    assert ledger.raw_delivery(d)["state"] == "pending"
    assert outbox(ledger) == [d]
    assert ledger.relay.publisher.resting()
    accept(ledger, 2)  # resting: not tried again, kept in order
    assert outbox(ledger) == [d, "dlv_2"]
