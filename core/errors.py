"""The error taxonomy. Foreign errors (httpx, vendor bodies, redis) are translated into these
once, at the edge that meets them; everything inside the hub speaks only these.

Everything crmhub raises on purpose derives from CrmhubError (tests/unit/test_errors.py walks
the packages to hold that), so "one of ours, with a message meant for a person" is one
`except`. Some also keep a builtin base that callers rely on (in parentheses):

    CrmhubError
    ├── HubError                        a delivery failed, classified (workers/policy.py)
    │   ├── TransientError              worth retrying: network, timeouts, 408, 5xx
    │   │   └── RateLimited             429: a connection-wide cooldown, no attempt used
    │   ├── DataError                   never retried: dead-lettered with a category
    │   ├── AuthError                   credentials refused after a refresh: pause
    │   └── Deferred                    not the target's doing: wait (no attempt used, no
    │       │                           cooldown) and look again; no room in the rate limit
    │       │                           for a read (workers/read_room.py)
    │       └── FetchPaused             the connection a `fetch:` reads is paused
    ├── LedgerUnavailable               Redis cannot be reached: 503, the lease runs out
    │   └── ReplicasUnconfirmed         CRMHUB_REDIS_WAIT_REPLICAS did not confirm an accept
    │                                   in time: 503 (the sender retries)
    ├── BrokerUnavailable               RabbitMQ did not take (confirm) a hint: it stays in
    │                                   the ledger's outbox for the next relay (core/amqp.py)
    ├── ArchiveUnavailable              the archive's database cannot be reached or used
    │                                   (core/archive/database.py)
    ├── ArchiverBusy                    an erasure waited too long for the archiver's lock
    │                                   (core/archive/erasure.py)
    ├── ConfigError                     the configuration is invalid: every ConfigProblem
    ├── BadPayload (ValueError)         a webhook body is not what its source promises: 400
    │                                   (core/intake.py)
    ├── NothingToSplit (ValueError)     a body without the arrays its source's split names;
    │                                   the receiver answers it as a BadPayload (core/splitting.py)
    ├── SignatureError                  a webhook not proven to come from its sender: 401
    │                                   (core/signatures/base.py)
    ├── UnknownScheme (KeyError)        no signature scheme of that name
    │                                   (core/signatures/registry.py)
    ├── PathSyntaxError (ValueError)    a dotted path written wrongly (core/paths.py)
    ├── TransformSpecError (ValueError) a transform written wrongly in the YAML: a
    │                                   configuration problem (core/mapping/transforms/base.py)
    ├── TransformError (ValueError)     a value a transform cannot convert: a mapping problem
    │                                   of that event (core/mapping/transforms/base.py)
    ├── EmbeddedRedisError (RuntimeError)  the embedded redis-server cannot start or answer
    │                                   (core/embedded_redis.py)
    ├── BadCursor (ValueError)          a list's `cursor` that no page gave out: 400
    │                                   (core/ledger/pages.py, core/ledger/actions.py)
    ├── NotPolling (LookupError)        a poll or backfill of a source with no `poll:`
    │                                   (core/polling.py, core/backfill.py)
    ├── OperatorRequestError            an operator API or dashboard request that cannot be
    │                                   served as asked: its status (400, 403, 404, 409)
    │                                   and why (app/api/)
    ├── EditRejected (ValueError)       an edit-and-replay the mapping refuses: 400 with every
    │                                   problem (core/edit_replay.py)
    ├── LedgerScriptError (ValueError)  a ledger script written wrongly (a key builder called
    │                                   with the wrong arguments, a misspelt state): found as
    │                                   the scripts are assembled at start (core/ledger/)
    ├── DurationSyntaxError (ValueError)  a duration written wrongly (`90s`, `15m`, `6h`, `7d`)
    │                                   (core/config/durations.py)
    └── AlertSinkError                  an alert sink did not take a notice: retried from the
                                        outbox (core/alerting/sinks.py)

Not in the tree, on purpose: marshmallow's ValidationError inside the config schema (its
protocol; the loader turns each into a ConfigProblem), SystemExit (a command's exit code) and
TypeError for a caller's bug (an argument missing, a case that cannot happen).
"""

from __future__ import annotations

from typing import Any

from core.vocabulary import DeadCategory


class CrmhubError(Exception):
    """The root of everything crmhub raises on purpose."""


class HubError(CrmhubError):
    """Base of every classified delivery failure."""


class TransientError(HubError):
    """Worth retrying later: network errors, timeouts, 408, 5xx."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.excerpt = excerpt


class RateLimited(TransientError):
    """429 / Retry-After: a connection-wide cooldown that does not consume an attempt."""


class DataError(HubError):
    """Never retried: the event cannot be written as it is. Dead-lettered with a category."""

    def __init__(
        self,
        message: str,
        *,
        category: DeadCategory = DeadCategory.REJECTED_BY_TARGET,
        problems: list[dict[str, Any]] | None = None,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.category = category
        self.problems = problems or []
        self.status = status
        self.excerpt = excerpt


class AuthError(HubError):
    """The target refuses our credentials even after a refresh: pause the connection."""

    def __init__(self, message: str, *, status: int | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.excerpt = excerpt


class Deferred(HubError):
    """The delivery cannot go on now, through no fault of its target: it waits, no attempt
    used, no cooldown or circuit moved, and looks again after `recheck_seconds`."""

    def __init__(self, message: str, *, recheck_seconds: float) -> None:
        super().__init__(message)
        self.recheck_seconds = recheck_seconds


class FetchPaused(Deferred):
    """The connection a mapping's `fetch:` reads from is paused (its credentials were
    refused): the delivery waits and looks again, so it goes on, in order, once that
    connection is resumed."""

    def __init__(self, message: str, *, connection: str, recheck_seconds: float) -> None:
        super().__init__(message, recheck_seconds=recheck_seconds)
        self.connection = connection


class LedgerUnavailable(CrmhubError):
    """The ledger store (Redis) cannot be reached: not a delivery failure (so not a HubError);
    the receiver answers 503 + Retry-After, a worker leaves its lease to run out."""


class ReplicasUnconfirmed(LedgerUnavailable):
    """An accept reached the primary, but fewer replicas than CRMHUB_REDIS_WAIT_REPLICAS
    confirmed it within CRMHUB_REDIS_WAIT_TIMEOUT_MS: a failover now could lose it, so the
    receiver answers 503 and the sender retries (a retry that finds it is a duplicate, and
    is answered only once the replicas confirm that too)."""

    def __init__(self, confirmed: int, wanted: int) -> None:
        super().__init__(f"{confirmed} of {wanted} Redis replicas confirmed the write in time")
        self.confirmed = confirmed
        self.wanted = wanted


class BrokerUnavailable(CrmhubError):
    """An AMQP broker (RabbitMQ) could not be reached or did not confirm a published hint:
    not a delivery's failure; the hint stays in the ledger's outbox for the next relay (the
    sweeper's, at the latest)."""


class ArchiveUnavailable(CrmhubError):
    """The archive's database (SQLite file, PostgreSQL) cannot be reached or written: the
    events stay in Redis (nothing is removed before the archive has them) until it can."""


class ConfigError(CrmhubError):
    """The configuration is invalid. Carries every problem found, each naming file and key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    __slots__ = ("file", "key", "line", "message")

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class BadCursor(CrmhubError, ValueError):
    """A list's `cursor` that no page gave out (the API answers 400)."""


class NotPolling(CrmhubError, LookupError):
    """A source named where a polling source is needed (a poll, a backfill) has no `poll:`."""

    def __init__(self, source: str) -> None:
        super().__init__(
            f"source {source!r} does not poll (it has no `poll:`); give it one, or name a "
            "source that has"
        )


class OperatorRequestError(CrmhubError):
    """An operator API or dashboard request that cannot be served as asked: the HTTP status
    to answer, a short code, what is wrong and what to do (`detail`)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


class EditRejected(CrmhubError, ValueError):
    """An edit-and-replay that the mapping or the target's field specs refuse: every problem,
    each {field, problem, value} (the API answers 400 listing them)."""

    def __init__(self, message: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.problems = problems


class LedgerScriptError(CrmhubError, ValueError):
    """A ledger script (core/ledger/*.lua) written wrongly: a key builder called with the
    wrong number of arguments, a vocabulary word that is not one. Raised while the scripts are
    assembled, so a process refuses to start rather than run a broken script."""


class DurationSyntaxError(CrmhubError, ValueError):
    """A duration written wrongly: expected `90s`, `15m`, `6h`, `7d` (core/config/durations.py)."""


class AlertSinkError(CrmhubError):
    """An alert sink (webhook, PagerDuty, Slack, email) did not take a notice; the outbox
    retries it for that sink (core/ledger/outbox.py)."""
