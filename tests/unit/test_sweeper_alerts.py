"""The scheduler's periodic work (workers/sweeper.py) and the alert outbox
(core/ledger/outbox.py: one entry per notice and sink, retried for that sink only)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import fakeredis
import httpx
import pytest

from core.alerting.sinks import webhook_sender
from core.config import Config
from core.ledger import Ledger, NewDelivery, NewEvent, Swept
from core.ledger.keys import LedgerKeys
from core.ledger.outbox import MAX_SEND_ATTEMPTS, AlertOutbox, SendResult
from core.queue import HintQueue
from core.settings import Settings
from core.vocabulary import AttemptOutcome
from workers import sweeper
from workers.runtime import WorkerRuntime

T0 = 1_750_000_000.0
ALERT_URL = "https://hooks.example.com/services/T000/B000/oncall"


def runtime(key_prefix: str, **settings: Any) -> WorkerRuntime:
    client = fakeredis.FakeRedis()
    s = Settings(key_prefix=key_prefix, **settings)
    ledger = Ledger(client, prefix=key_prefix, queue=HintQueue(s.celery_queue, s.celery_keyprefix))
    return WorkerRuntime(
        settings=s,
        config=Config(path="crmhub.yaml", sources={}, connections={}, mappings={}),
        ledger=ledger,
    )


def accept(rt: WorkerRuntime, count: int, now: float = T0) -> list[str]:
    events = [
        NewEvent(
            id=f"evt_{i}",
            source="stripe",
            type="customer.updated",
            external_id=f"ext_{i}",
            received_at=now,
            occurred_at=None,
            headers={},
            body="{}",
            deliveries=(
                NewDelivery(
                    id=f"dlv_{i:05d}",
                    mapping="m",
                    connection="crm",
                    object="contacts",
                    record_key=f"crm:contacts:id={i}",
                ),
            ),
        )
        for i in range(count)
    ]
    rt.ledger.accept(events, now)
    return [f"dlv_{i:05d}" for i in range(count)]


def queued(rt: WorkerRuntime) -> int:
    return int(rt.ledger.redis.llen(rt.ledger.queue.key))


# sweep ----------------------------------------------------------------------------------
def test_sweep_moves_due_retries_back_to_pending(key_prefix: str) -> None:
    rt = runtime(key_prefix)
    [d] = accept(rt, 1)
    rt.ledger.claim(d, token="t", now=T0, lease_seconds=60)
    rt.ledger.finish(
        d, token="t", now=T0, outcome=AttemptOutcome.RETRY, attempt={}, due=T0 + 10, transient=True
    )
    assert sweeper.sweep(rt, now=T0 + 5) == {"due": 0, "expired": 0, "republished": 0}
    assert sweeper.sweep(rt, now=T0 + 10) == {"due": 1, "expired": 0, "republished": 0}
    assert rt.ledger.raw_delivery(d)["state"] == "pending"


def test_sweep_is_single_flight(key_prefix: str) -> None:
    rt = runtime(key_prefix)
    [d] = accept(rt, 1)
    rt.ledger.claim(d, token="t", now=T0, lease_seconds=60)
    # another scheduler host is sweeping right now
    other = rt.ledger.redis.lock(f"{key_prefix}:sweep:lock", timeout=30)
    assert other.acquire(blocking=False)
    assert sweeper.sweep(rt, now=T0 + 120) == {"skipped": 1}
    assert rt.ledger.raw_delivery(d)["state"] == "in_flight"  # nothing was touched
    other.release()

    assert sweeper.sweep(rt, now=T0 + 120)["expired"] == 1
    # the lock is released after a sweep: the next tick sweeps again
    assert "skipped" not in sweeper.sweep(rt, now=T0 + 121)
    assert not rt.ledger.redis.exists(f"{key_prefix}:sweep:lock")


def test_sweep_works_through_a_backlog_in_bounded_batches(
    key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime(key_prefix)
    accept(rt, 2500)
    rt.ledger.redis.delete(rt.ledger.queue.key)  # every message lost (a broker flush)
    calls: list[Swept] = []
    real_sweep = rt.ledger.sweep

    def spy(now: float, **kw: Any) -> Swept:
        counts = real_sweep(now, **kw)
        calls.append(counts)
        return counts

    monkeypatch.setattr(rt.ledger, "sweep", spy)
    totals = sweeper.sweep(rt, now=T0 + rt.settings.republish_after_seconds + 1)
    assert totals == {"due": 0, "expired": 0, "republished": 2500}
    assert [c.republished for c in calls] == [1000, 1000, 500]
    assert queued(rt) == 2500


def test_sweep_republishes_after_the_configured_delay(key_prefix: str) -> None:
    rt = runtime(key_prefix, republish_after_seconds=300)
    accept(rt, 1)
    assert sweeper.sweep(rt, now=T0 + 120)["republished"] == 0
    assert sweeper.sweep(rt, now=T0 + 301)["republished"] == 1


# the alert outbox -----------------------------------------------------------------------
class Hook:
    """The on-call webhook: answers from `answer`, remembers every request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, text="ok"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def senders(self, *names: str) -> dict[str, Callable[[dict[str, Any]], None]]:
        send = webhook_sender(ALERT_URL, httpx.Client(transport=httpx.MockTransport(self)))
        return {name: send for name in names or ("webhook",)}


def paused_alert(connection: str = "crm", summary: str = "connection 'crm' is paused") -> dict:
    return {
        "id": f"alt_{connection}",
        "kind": "connection_paused",
        "status": "firing",
        "connection": connection,
        "summary": summary,
        "dedup_key": f"connection_paused:{connection}",
    }


def entries(outbox: AlertOutbox) -> list[dict[str, Any]]:
    return [json.loads(e) for e in outbox.redis.lrange(outbox.key, 0, -1)]


def test_a_sent_alert_leaves_the_outbox(key_prefix: str) -> None:
    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert())
    hook = Hook()
    assert outbox.send_due(hook.senders(), now=T0) == 1
    assert outbox.pending() == 0
    [request] = hook.requests
    assert request.method == "POST" and str(request.url) == ALERT_URL
    assert json.loads(request.content) == paused_alert()


@pytest.mark.parametrize("failure", ["500", "connect"])
def test_a_failed_send_is_retried_later_with_backoff(key_prefix: str, failure: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(500, text="internal error")

    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert())
    hook = Hook(fail)
    assert outbox.send_due(hook.senders(), now=T0) == 0
    [entry] = entries(outbox)
    assert entry["attempts"] == 1 and entry["next_at"] == T0 + 2
    assert entry["alert"]["kind"] == "connection_paused"

    # not due yet: not tried
    assert outbox.send_due(hook.senders(), now=T0 + 1) == 0
    assert len(hook.requests) == 1
    # due: tried again, and backs off further
    assert outbox.send_due(hook.senders(), now=T0 + 2) == 0
    assert len(hook.requests) == 2
    assert entries(outbox)[0]["next_at"] == T0 + 2 + 4

    hook.answer = lambda request: httpx.Response(204)
    assert outbox.send_due(hook.senders(), now=T0 + 6) == 1
    assert outbox.pending() == 0


def test_an_alert_is_dropped_after_max_send_attempts(
    key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert())
    hook = Hook(lambda request: httpx.Response(503))
    now = T0
    results: list[SendResult] = []
    for _ in range(MAX_SEND_ATTEMPTS + 3):
        outbox.send_due(hook.senders(), now=now, on_result=results.append)
        now += 601  # past any backoff (capped at 600 s)
    assert len(hook.requests) == MAX_SEND_ATTEMPTS
    assert outbox.pending() == 0
    assert "giving up on alert" in caplog.text
    assert results[-1].final and not results[-1].ok  # reported, for `crmhub alerts`


def test_one_failing_alert_does_not_block_the_others(key_prefix: str) -> None:
    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert("crm", "first"))
    outbox.put(paused_alert("erp", "second"))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if json.loads(request.content)["connection"] == "crm" else 200)

    assert outbox.send_due(Hook(answer).senders(), now=T0) == 1
    assert [e["alert"]["connection"] for e in entries(outbox)] == ["crm"]


def test_a_sink_that_refuses_is_retried_for_that_sink_only(key_prefix: str) -> None:
    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert(), "pager")
    outbox.put(paused_alert(), "chat")
    sent: dict[str, int] = {"pager": 0, "chat": 0}

    def taking(name: str, ok: bool) -> Callable[[dict[str, Any]], None]:
        def send(alert: dict[str, Any]) -> None:
            sent[name] += 1
            if not ok:
                raise RuntimeError("down")

        return send

    outbox.send_due({"pager": taking("pager", False), "chat": taking("chat", True)}, now=T0)
    assert [e["sink"] for e in entries(outbox)] == ["pager"]
    outbox.send_due({"pager": taking("pager", True), "chat": taking("chat", True)}, now=T0 + 60)
    assert sent == {"pager": 2, "chat": 1} and outbox.pending() == 0


def test_an_entry_for_a_sink_no_longer_configured_is_given_up_and_reported(
    key_prefix: str,
) -> None:
    outbox = AlertOutbox(fakeredis.FakeRedis(), LedgerKeys(key_prefix))
    outbox.put(paused_alert(), "removed")
    results: list[SendResult] = []
    assert outbox.send_due({}, now=T0, on_result=results.append) == 0
    assert outbox.pending() == 0
    [result] = results
    assert result.final and not result.ok and "no longer configured" in result.error


def test_send_alerts_posts_to_the_configured_url(
    key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Hook()
    real_client = httpx.Client
    monkeypatch.setattr(
        sweeper.httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(hook), **kw)
    )
    rt = runtime(key_prefix, alert_webhook_url=ALERT_URL)
    rt.ledger.alerts.put(paused_alert())
    assert sweeper.send_alerts(rt, now=T0) == 1
    assert [str(r.url) for r in hook.requests] == [ALERT_URL]
    assert rt.ledger.alerts.pending() == 0


def test_send_alerts_without_a_sink_keeps_the_alert(key_prefix: str) -> None:
    rt = runtime(key_prefix)
    rt.ledger.alerts.put(paused_alert())
    sweeper.send_alerts(rt, now=T0)
    # no sink configured: given up on, and recorded as not sent
    assert rt.ledger.alerts.pending() == 0
    [row] = rt.ledger.alerting.notifications(["alt_crm"])["alt_crm"]
    assert row["ok"] is False and row["sink"] == "webhook"


def test_alert_send_is_single_flight_and_keeps_the_alert_until_sent() -> None:
    client = fakeredis.FakeRedis()
    outbox = AlertOutbox(client, LedgerKeys("single"))
    outbox.put(paused_alert())
    sent: list[dict] = []
    other = client.lock("single:alerts:lock", timeout=60)
    assert other.acquire()
    assert outbox.send_due({"webhook": sent.append}, now=1e10) == 0  # another is sending
    assert outbox.pending() == 1 and sent == []
    other.release()

    def crash(alert: dict) -> None:
        raise KeyboardInterrupt  # the process dies mid-send

    with contextlib.suppress(KeyboardInterrupt):
        outbox.send_due({"webhook": crash}, now=1e10)
    assert outbox.pending() == 1  # still there to send next time
    assert outbox.send_due({"webhook": sent.append}, now=1e10) == 1
    assert outbox.pending() == 0 and sent[0]["connection"] == "crm"
