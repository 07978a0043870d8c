"""The delivery policy (workers/policy.py): what each attempt's outcome means."""

from __future__ import annotations

import random

import pytest

from core.config import RetryPolicy
from core.errors import AuthError, DataError, Deferred, RateLimited, TransientError
from core.vocabulary import DeadCategory
from workers.policy import (
    BUG_ATTEMPTS,
    DEFAULT_RATE_LIMIT_COOLDOWN,
    Decision,
    backoff_seconds,
    decide,
)

NOW = 1_750_000_000.0
RETRY = RetryPolicy(base_seconds=5.0, max_seconds=300.0, give_up_after_seconds=3600.0)


def decide_now(
    error: BaseException | None,
    attempts: int = 1,
    age: float = 0.0,
    retry: RetryPolicy = RETRY,
    seed: int = 7,
) -> Decision:
    return decide(
        error, attempts=attempts, age_seconds=age, now=NOW, retry=retry, rng=random.Random(seed)
    )


def test_success_is_delivered() -> None:
    decision = decide_now(None)
    assert decision.outcome == "delivered"
    assert decision.due is None and not decision.transient


def test_a_transient_failure_is_retried_later_and_counts_toward_the_breaker() -> None:
    decision = decide_now(TransientError("target answered HTTP 503", status=503))
    assert decision.outcome == "retry"
    assert decision.transient
    assert decision.due is not None and NOW + 2.5 <= decision.due <= NOW + 5
    assert decision.error == "target answered HTTP 503"
    assert decision.cooldown_until is None


def test_the_error_text_names_the_status_when_the_message_does_not() -> None:
    decision = decide_now(TransientError("connection reset by peer", status=502))
    assert decision.error == "connection reset by peer [HTTP 502]"


def test_a_429_is_deferred_with_a_connection_cooldown_from_retry_after() -> None:
    decision = decide_now(RateLimited("rate limited", status=429, retry_after=42), attempts=3)
    assert decision.outcome == "deferred"
    assert decision.due == NOW + 42
    assert decision.cooldown_until == NOW + 42
    assert not decision.transient  # a 429 is not the target failing


def test_a_deferral_waits_without_a_cooldown_or_the_circuit_however_old() -> None:
    # no room in our own rate limit for a read: not the target's doing
    waited = Deferred("no room now", recheck_seconds=12.5)
    decision = decide_now(waited, attempts=1, age=RETRY.give_up_after_seconds * 2)
    assert (decision.outcome, decision.due) == ("deferred", NOW + 12.5)
    assert decision.cooldown_until is None and not decision.transient


def test_a_429_without_retry_after_cools_down_for_the_default() -> None:
    decision = decide_now(RateLimited("rate limited", status=429))
    assert decision.cooldown_until == NOW + DEFAULT_RATE_LIMIT_COOLDOWN
    assert decision.due == NOW + DEFAULT_RATE_LIMIT_COOLDOWN


def test_a_429_is_never_given_up_on_however_old_the_delivery() -> None:
    # the attempt is not counted and the target is merely busy: no dead letter
    decision = decide_now(
        RateLimited("rate limited", status=429, retry_after=60),
        attempts=50,
        age=10 * RETRY.give_up_after_seconds,
    )
    assert decision.outcome == "deferred"


@pytest.mark.parametrize("category", ["rejected_by_target", "validation", "mapping"])
def test_a_data_error_is_dead_at_once_with_its_category(category: str) -> None:
    decision = decide_now(
        DataError(
            "target rejected the record (HTTP 422)", category=DeadCategory(category), status=422
        )
    )
    assert decision.outcome == "dead"
    assert decision.category == category
    assert decision.error == "target rejected the record (HTTP 422)"
    assert not decision.transient
    assert decision.due is None


def test_an_auth_failure_holds_the_delivery() -> None:
    decision = decide_now(AuthError("target refused our credentials (HTTP 401)", status=401))
    assert decision.outcome == "held"
    assert decision.error == "target refused our credentials (HTTP 401)"
    assert decision.due is None and not decision.transient


def test_backoff_doubles_per_attempt_within_equal_jitter_bounds() -> None:
    retry = RetryPolicy(base_seconds=2, max_seconds=10_000, give_up_after_seconds=10**6)
    rng = random.Random(1)
    for attempt in range(1, 10):
        full = 2 * 2 ** (attempt - 1)
        samples = [backoff_seconds(attempt, retry, rng) for _ in range(200)]
        assert all(full / 2 <= s <= full for s in samples), attempt
        # jittered, not fixed: retries of many deliveries spread out
        assert max(samples) - min(samples) > full / 4


def test_backoff_is_capped_at_max_seconds() -> None:
    retry = RetryPolicy(base_seconds=5, max_seconds=60, give_up_after_seconds=10**6)
    rng = random.Random(2)
    for attempt in (5, 6, 10, 30):
        assert all(30 <= backoff_seconds(attempt, retry, rng) <= 60 for _ in range(100))


def test_backoff_stays_capped_at_very_high_attempt_counts() -> None:
    # a long give-up window (months of hourly retries) reaches thousands of attempts; the
    # delay must stay at the cap, not overflow (the loader gives floats, as here)
    retry = RetryPolicy(base_seconds=5.0, max_seconds=3600.0, give_up_after_seconds=1e9)
    assert 1800 <= backoff_seconds(5000, retry, random.Random(3)) <= 3600
    decision = decide_now(TransientError("HTTP 503", status=503), attempts=5000, retry=retry)
    assert decision.outcome == "retry" and decision.due is not None
    assert NOW + 1800 <= decision.due <= NOW + 3600


def test_retry_after_on_a_transient_error_is_honoured_when_longer_than_backoff() -> None:
    decision = decide_now(TransientError("HTTP 503", status=503, retry_after=120))
    assert decision.due == NOW + 120
    short = decide_now(TransientError("HTTP 503", status=503, retry_after=1))
    assert short.due is not None and short.due >= NOW + 2.5  # backoff still applies


def test_giving_up_once_the_next_retry_would_pass_the_give_up_age() -> None:
    error = TransientError("target answered HTTP 500", status=500)
    # base 5 s, attempt 1: the next retry is 2.5..5 s away
    assert decide_now(error, age=RETRY.give_up_after_seconds - 10).outcome == "retry"
    decision = decide_now(error, attempts=9, age=RETRY.give_up_after_seconds - 1)
    assert decision.outcome == "dead"
    assert decision.category == "retries_exhausted"
    assert decision.transient
    assert "gave up after 9 attempts" in decision.error
    assert "target answered HTTP 500" in decision.error


def test_a_retry_after_beyond_the_give_up_age_gives_up_now() -> None:
    decision = decide_now(TransientError("HTTP 503", status=503, retry_after=7200), age=10)
    assert decision.outcome == "dead" and decision.category == "retries_exhausted"


def test_a_bug_in_the_hub_is_retried_but_not_counted_against_the_target() -> None:
    decision = decide_now(KeyError("body"), attempts=1)
    assert decision.outcome == "retry"
    assert not decision.transient
    assert decision.due is not None and decision.due > NOW


def test_a_bug_is_dead_lettered_after_bug_attempts() -> None:
    assert decide_now(ValueError("boom"), attempts=BUG_ATTEMPTS - 1).outcome == "retry"
    decision = decide_now(ValueError("boom"), attempts=BUG_ATTEMPTS)
    assert decision.outcome == "dead"
    assert decision.category == "retries_exhausted"
    assert not decision.transient
    assert "boom" in decision.error
