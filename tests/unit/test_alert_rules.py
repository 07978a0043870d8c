"""The alert state machine (core/alerting/evaluate.py) and the conditions the ledger shows
(core/alerting/conditions.py, core/ledger/alert_store.py), on fakeredis with the real scripts."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import fakeredis
from conftest import hub_ledger, make_settings
from hubtest import CRM_CONFIG, CRM_ENV, accept_webhook, stripe_event

from core.alerting.conditions import conditions
from core.alerting.evaluate import evaluate
from core.alerting.model import AlertKind, AlertState, Condition
from core.alerting.service import connection_objects, evaluate_alerts
from core.config import Config, load_config
from core.config.alerting import AlertRules
from core.ledger import Ledger
from core.vocabulary import AttemptOutcome, DeadCategory, OperatorAction

T0 = 1_800_000_000.0
RULES = AlertRules(renotify_every=3600, flap_window=600)


def cond(count: int = 1, hold: float = 0.0, key: str = "dead_letters:crm:mapping") -> Condition:
    return Condition(
        key, AlertKind.DEAD_LETTERS, f"{count} dead", {"count": count}, "crm", hold_seconds=hold
    )


class Machine:
    """The evaluator's loop with its stored states, as the ledger keeps them."""

    def __init__(self, rules: AlertRules = RULES) -> None:
        self.states: dict[str, AlertState] = {}
        self.sent: list[tuple[str, str, Any]] = []  # (status, id, count)
        self.rules = rules

    def tick(self, now: float, *holding: Condition) -> None:
        result = evaluate(list(holding), dict(self.states), now, self.rules)
        self.states.update(result.changed)
        for key in result.forgotten:
            del self.states[key]
        self.sent += [(s.status, s.id, s.details.get("count")) for s in result.notices]


# the state machine ----------------------------------------------------------------------
def test_a_condition_fires_once_folds_what_follows_and_resolves_once() -> None:
    m = Machine()
    m.tick(T0, cond(1))
    m.tick(T0 + 5, cond(250))  # a burst: folded into the firing alert, not notified
    m.tick(T0 + 10, cond(500))
    [(status, alert_id, count)] = m.sent
    assert (status, count) == ("firing", 1)
    assert m.states[cond().key].details == {"count": 500}
    m.tick(T0 + 15)  # cleared
    m.tick(T0 + 20)
    assert m.sent[1:] == [("resolved", alert_id, 500)]


def test_a_firing_alert_is_reminded_every_renotify_interval() -> None:
    m = Machine()
    for t in range(0, 7201, 5):
        m.tick(T0 + t, cond(t + 1))
    assert [s for s, _, _ in m.sent] == ["firing", "firing", "firing"]
    assert len({i for _, i, _ in m.sent}) == 1  # the same alert, reminded


def test_a_hold_makes_it_pending_first_and_a_blip_is_never_notified() -> None:
    m = Machine()
    m.tick(T0, cond(hold=60))
    assert m.states[cond().key].status == "pending" and m.sent == []
    m.tick(T0 + 30)  # cleared before the hold: forgotten, nothing sent
    assert m.states == {} and m.sent == []
    m.tick(T0 + 40, cond(hold=60))
    m.tick(T0 + 99, cond(hold=60))
    assert m.sent == []
    m.tick(T0 + 100, cond(hold=60))
    assert [s for s, _, _ in m.sent] == ["firing"]


def test_a_flapping_condition_is_notified_at_most_once_per_flap_window() -> None:
    m = Machine()
    m.tick(T0, cond())  # fires
    m.tick(T0 + 10)  # resolves
    for t in range(20, 300, 20):  # flaps within the window: not notified again
        m.tick(T0 + t, cond())
        m.tick(T0 + t + 10)
    assert [s for s, _, _ in m.sent] == ["firing", "resolved"]
    m.tick(T0 + 300, cond())  # still firing once the window has passed: notified
    m.tick(T0 + 615, cond())
    assert [s for s, _, _ in m.sent] == ["firing", "resolved", "firing"]
    m.tick(T0 + 620)
    assert [s for s, _, _ in m.sent][-1] == "resolved"


# conditions from the ledger -------------------------------------------------------------
def hub(write_config: Any, key_prefix: str, yaml: str = CRM_CONFIG) -> tuple[Config, Ledger]:
    settings = make_settings(write_config(yaml), key_prefix, **CRM_ENV)
    config = load_config(settings.config_path, settings.environ)
    return config, hub_ledger(settings, fakeredis.FakeRedis())


def holding(config: Config, ledger: Ledger, now: float) -> dict[str, Condition]:
    seen = ledger.alerting.observe(now, sorted(config.sources), connection_objects(config))
    return {c.key: c for c in conditions(seen, config, {})}


def dead_letter(config: Config, ledger: Ledger, n: int, now: float = T0) -> str:
    [event] = accept_webhook(config, ledger, stripe_event(f"evt_{n}", email=f"u{n}@x.io"), now=now)
    [delivery] = event.deliveries
    ledger.claim(delivery.id, token="t", now=now, lease_seconds=60)
    ledger.finish(
        delivery.id,
        token="t",
        now=now,
        outcome=AttemptOutcome.DEAD,
        attempt={},
        error="target rejected the record (HTTP 422)",
        category=DeadCategory.REJECTED_BY_TARGET,
    )
    return delivery.id


def test_dead_letters_are_counted_per_connection_and_category_until_replayed_or_discarded(
    write_config: Any, key_prefix: str
) -> None:
    config, ledger = hub(write_config, key_prefix)
    ids = [dead_letter(config, ledger, n) for n in range(3)]
    [found] = holding(config, ledger, T0 + 1).values()
    assert found.key == "dead_letters:crm:rejected_by_target"
    assert found.details["count"] == 3 and found.details["top_error"].endswith("(HTTP 422)")
    assert set(found.details["sample_ids"]) == set(ids)
    assert "crmhub dlq list --connection crm --category rejected_by_target" in str(found.details)
    ledger.dead_letter_action(OperatorAction.DISCARD, [(ids[0], "rk")], now=T0, by="me")
    ledger.dead_letter_action(OperatorAction.REPLAY, [(ids[1], "rk1")], now=T0, by="me")
    assert holding(config, ledger, T0 + 2)[found.key].details["count"] == 1
    ledger.dead_letter_action(OperatorAction.DISCARD, [(ids[2], "rk")], now=T0, by="me")
    assert found.key not in holding(config, ledger, T0 + 3)


QUIET = CRM_CONFIG.replace(
    "    occurred_at: created\n", "    occurred_at: created\n    expect_activity_within: 90s\n"
).replace(
    "    auth: {type: bearer, token_env: CRM_TOKEN}\n",
    "    auth: {type: bearer, token_env: CRM_TOKEN}\n    expect_success_within: 2m\n",
)


def test_went_quiet_counts_from_the_later_of_the_hub_start_and_the_last_activity(
    write_config: Any, key_prefix: str
) -> None:
    config, ledger = hub(write_config, key_prefix, QUIET)
    assert config.sources["stripe"].expect_activity_within == 90
    assert config.connections["crm"].expect_success_within == 120
    ledger.alerting.mark_hub_started(T0)
    assert holding(config, ledger, T0 + 89) == {}
    assert set(holding(config, ledger, T0 + 90)) == {"went_quiet:source:stripe"}
    assert set(holding(config, ledger, T0 + 120)) == {
        "went_quiet:source:stripe",
        "went_quiet:connection:crm",
    }
    accept_webhook(config, ledger, stripe_event("evt_q"), now=T0 + 121)
    assert set(holding(config, ledger, T0 + 122)) == {"went_quiet:connection:crm"}
    ledger.alerting.mark_hub_started(T0 + 500)  # a restart: counted from there
    assert holding(config, ledger, T0 + 580) == {}


def test_a_manual_pause_alerts_only_when_configured_to(write_config: Any, key_prefix: str) -> None:
    config, ledger = hub(write_config, key_prefix)
    ledger.pause("crm", reason="maintenance window", by="ops@host (cli)", now=T0)
    assert holding(config, ledger, T0 + 1) == {}
    manual = CRM_CONFIG + "alerts:\n  rules:\n    connection_paused: {manual: true}\n"
    config, _ = hub(write_config, key_prefix, manual)
    assert config.alerts.rules.paused_manual
    assert set(holding(config, ledger, T0 + 1)) == {"connection_paused:crm"}


def test_a_kind_can_be_switched_off(write_config: Any, key_prefix: str) -> None:
    off = CRM_CONFIG + "alerts:\n  rules:\n    dead_letters: {enabled: false}\n"
    config, ledger = hub(write_config, key_prefix, off)
    dead_letter(config, ledger, 1)
    assert holding(config, ledger, T0 + 1) == {}


def test_backlog_age_is_the_oldest_waiting_delivery_of_the_connection(
    write_config: Any, key_prefix: str
) -> None:
    yaml = CRM_CONFIG + "alerts:\n  rules:\n    backlog_age: {older_than: 10m}\n"
    config, ledger = hub(write_config, key_prefix, yaml)
    assert config.alerts.rules.backlog_older_than == 600
    accept_webhook(config, ledger, stripe_event("evt_b1"), now=T0)  # pending
    [event] = accept_webhook(
        config, ledger, stripe_event("evt_b2", email="b@x.io"), now=T0 + 60
    )  # and a retry
    [d] = event.deliveries
    ledger.claim(d.id, token="t", now=T0 + 60, lease_seconds=60)
    ledger.finish(
        d.id, token="t", now=T0 + 60, outcome=AttemptOutcome.RETRY, attempt={}, due=T0 + 9999
    )
    assert "backlog_age:crm" not in holding(config, ledger, T0 + 599)
    [found] = [c for c in holding(config, ledger, T0 + 600).values() if c.key == "backlog_age:crm"]
    assert found.details["older_than"] == "10m"


def test_circuit_open_holds_for_its_after_before_firing(write_config: Any, key_prefix: str) -> None:
    yaml = CRM_CONFIG + "alerts:\n  rules:\n    circuit_open: {after: 90s}\n"
    config, ledger = hub(write_config, key_prefix, yaml)
    ledger.redis.hset(ledger.keys.breaker("crm"), "state", "open")
    [found] = holding(config, ledger, T0).values()
    assert found.kind == AlertKind.CIRCUIT_OPEN and found.hold_seconds == 90


def test_credential_expiring_needs_failing_refreshes_while_the_token_still_works(
    write_config: Any, key_prefix: str
) -> None:
    config, ledger = hub(write_config, key_prefix)
    assert config.alerts.rules.credential_failures == 2
    ledger.tokens.refresh_failed("crm", "BAD_REFRESH_TOKEN", T0, expires_at=T0 + 300)
    assert holding(config, ledger, T0) == {}  # once may be a blip
    ledger.tokens.refresh_failed("crm", "BAD_REFRESH_TOKEN", T0 + 10, expires_at=T0 + 300)
    [found] = holding(config, ledger, T0 + 10).values()
    assert found.key == "credential_expiring:crm" and found.details["failures"] == 2
    ledger.tokens.refresh_succeeded("crm")
    assert holding(config, ledger, T0 + 20) == {}
    # failing only once the token had expired: that is the pause's, not a warning
    ledger.tokens.refresh_failed("crm", "x", T0 + 400, expires_at=T0 + 300)
    ledger.tokens.refresh_failed("crm", "x", T0 + 401, expires_at=T0 + 300)
    assert holding(config, ledger, T0 + 402) == {}


def test_two_schedulers_never_evaluate_at_once(write_config: Any, key_prefix: str) -> None:
    config, ledger = hub(write_config, key_prefix)
    dead_letter(config, ledger, 1)
    with ledger.alerting.lock() as held:
        assert held
        assert evaluate_alerts(ledger, config, sinks=["webhook"], now=T0) is None
    result = evaluate_alerts(ledger, config, sinks=["webhook", "pager"], now=T0)
    assert result is not None and len(result.notices) == 1
    assert [e["sink"] for e in ledger.alerts.entries()] == ["webhook", "pager"]
    # and the next evaluation sends nothing more
    evaluate_alerts(ledger, config, sinks=["webhook", "pager"], now=T0 + 1)
    assert ledger.alerts.pending() == 2
    [state] = ledger.alerting.states().values()
    assert state.status == "firing" and state.notified_status == "firing"
    # stored as JSON the ledger can be read back from
    raw = ledger.redis.hget(ledger.keys.alert_states(), state.key)
    assert isinstance(raw, bytes)
    assert json.loads(raw)["id"] == state.id
    assert dataclasses.asdict(state) == json.loads(raw)


def test_archive_behind_fires_when_done_events_outstay_their_hot_retention(
    write_config: Any, key_prefix: str
) -> None:
    """An archiver that cannot keep up lets Redis fill: on-call hears of it once, it resolves
    once the archive caught up."""
    yaml = CRM_CONFIG + "alerts:\n  rules:\n    archive_behind: {behind: 30m}\n"
    config, ledger = hub(write_config, key_prefix, yaml)
    assert config.alerts.rules.archive_behind == 1800
    [event] = accept_webhook(config, ledger, stripe_event("evt_a1"), now=T0)
    [d] = event.deliveries
    ledger.claim(d.id, token="t", now=T0, lease_seconds=60)
    ledger.finish(d.id, token="t", now=T0, outcome=AttemptOutcome.DELIVERED, attempt={})
    retention = 3600.0

    def fired(now: float) -> list[str]:
        result = evaluate_alerts(
            ledger, config, sinks=["oncall"], now=now, hot_retention_seconds=retention
        )
        assert result is not None
        return [f"{s.kind}:{s.status}" for s in result.notices]

    assert fired(T0 + retention + 1799) == []
    assert fired(T0 + retention + 1800) == ["archive_behind:firing"]
    assert fired(T0 + retention + 1900) == []  # once
    ledger.redis.delete(ledger.keys.terminal_index())  # as an archive pass leaves it
    assert fired(T0 + retention + 2000) == ["archive_behind:resolved"]


def test_a_pause_resumed_between_two_checks_still_alerts_once_and_resolves(
    write_config: Any, key_prefix: str
) -> None:
    """The hub paused a connection on a refused credential and an operator resumed it before
    the scheduler's next check: on-call still hears of it, once."""
    config, ledger = hub(write_config, key_prefix)

    def notices(now: float) -> list[tuple[str, str]]:
        result = evaluate_alerts(ledger, config, sinks=["oncall"], now=now)
        assert result is not None
        return [(s.kind, s.status) for s in result.notices]

    assert notices(T0) == []
    [event] = accept_webhook(config, ledger, stripe_event("evt_p1"), now=T0 + 1)
    [d] = event.deliveries
    ledger.claim(d.id, token="t", now=T0 + 1, lease_seconds=60)
    ledger.finish(d.id, token="t", now=T0 + 1, outcome=AttemptOutcome.HELD, attempt={},
                  pause={"reason": "auth", "since": T0 + 1, "by": "crmhub"})  # fmt: skip
    ledger.resume("crm", T0 + 2, by="ops")
    assert notices(T0 + 3) == [("connection_paused", "firing")]
    assert notices(T0 + 4) == []  # once
    ledger.claim(d.id, token="t2", now=T0 + 5, lease_seconds=60)
    ledger.finish(d.id, token="t2", now=T0 + 5, outcome=AttemptOutcome.DELIVERED, attempt={})
    assert notices(T0 + 6) == [("connection_paused", "resolved")]
    assert notices(T0 + 7) == []  # that pause is told; it does not fire again
    # an operator's own brief pause does not page unless configured to
    ledger.pause("crm", reason="maintenance", by="ops", now=T0 + 8)
    ledger.resume("crm", T0 + 9, by="ops")
    assert notices(T0 + 10) == []
