"""The delivery policy: what an attempt's outcome means for the delivery. A plain function.

success                 -> delivered
TransientError          -> retry at now + backoff (exponential, jittered, capped,
                           never sooner than Retry-After); past the give-up age -> dead
                           (retries_exhausted). Paused time does not count toward the age.
RateLimited (429)       -> deferred: connection-wide cooldown until Retry-After; the
                           attempt is not counted
Deferred                -> deferred for its recheck time, not the target's fault (a fetch:
                           connection paused, no room in the rate limit for a read): the
                           attempt is not counted, no cooldown, the circuit unmoved
DataError               -> dead at once with its category, never retried
AuthError               -> held; the connection pauses (reason auth) and on-call is alerted
a bug in our own code   -> retried like a transient failure, loudly, up to BUG_ATTEMPTS
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.config.model import RetryPolicy
from core.errors import (
    AuthError,
    DataError,
    Deferred,
    HubError,
    RateLimited,
    TransientError,
)
from core.vocabulary import AttemptOutcome, DeadCategory

#: a delivery that keeps hitting a bug in the hub is dead-lettered after this many attempts
BUG_ATTEMPTS = 5
#: one generator for the jitter (building one per decision costs for nothing)
_JITTER = random.Random()
#: cooldown after a 429 that carries no Retry-After
DEFAULT_RATE_LIMIT_COOLDOWN = 10.0


@dataclass(frozen=True)
class Decision:
    outcome: AttemptOutcome
    due: float | None = None  # retry / deferred: when to try again (unix seconds)
    category: DeadCategory | None = None  # dead: why
    error: str = ""
    transient: bool = False  # counts toward the circuit breaker
    cooldown_until: float | None = None


def backoff_seconds(attempt: int, retry: RetryPolicy, rng: random.Random) -> float:
    """Capped exponential with 'equal jitter': half fixed, half random, so retries spread
    out (no thundering herd) yet never come back immediately."""
    # the exponent is bounded so thousands of attempts (a long give-up window) stay at the cap
    # instead of overflowing a float
    delay = min(retry.max_seconds, retry.base_seconds * 2 ** min(max(0, attempt - 1), 64))
    return delay / 2 + rng.uniform(0, delay / 2)


def describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    text = str(error) or type(error).__name__
    return f"{text} [HTTP {status}]" if status and str(status) not in text else text


def decide(
    error: BaseException | None,
    *,
    attempts: int,
    age_seconds: float,
    now: float,
    retry: RetryPolicy,
    rng: random.Random | None = None,
) -> Decision:
    """`age_seconds`: time since the first attempt, paused time excluded."""
    rng = rng or _JITTER
    if error is None:
        return Decision(AttemptOutcome.DELIVERED)
    message = describe(error)
    if isinstance(error, RateLimited):
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_COOLDOWN
        return Decision(
            AttemptOutcome.DEFERRED, due=now + wait, cooldown_until=now + wait, error=message
        )
    if isinstance(error, Deferred):  # not this connection's fault: no cooldown of its own
        return Decision(AttemptOutcome.DEFERRED, due=now + error.recheck_seconds, error=message)
    if isinstance(error, DataError):
        return Decision(AttemptOutcome.DEAD, category=error.category, error=message)
    if isinstance(error, AuthError):
        return Decision(AttemptOutcome.HELD, error=message)
    if isinstance(error, TransientError) or not isinstance(error, HubError):
        is_bug = not isinstance(error, HubError)
        delay = backoff_seconds(attempts, retry, rng)
        if isinstance(error, TransientError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if age_seconds + delay > retry.give_up_after_seconds or (
            is_bug and attempts >= BUG_ATTEMPTS
        ):
            return Decision(
                AttemptOutcome.DEAD,
                category=DeadCategory.RETRIES_EXHAUSTED,
                transient=not is_bug,
                error=f"gave up after {attempts} attempts over "
                f"{int(age_seconds)} s; last error: {message}",
            )
        return Decision(AttemptOutcome.RETRY, due=now + delay, transient=not is_bug, error=message)
    raise TypeError(f"unclassified hub error {error!r}")  # pragma: no cover - exhaustive above
