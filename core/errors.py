"""The error taxonomy. Foreign errors (httpx, vendor bodies, redis) are translated into these
once, at the edge that meets them; everything inside the hub speaks only these."""

from __future__ import annotations

from core.vocabulary import DeadCategory


class HubError(Exception):
    """Base of every classified failure."""


class TransientError(HubError):
    """Worth retrying later: network errors, timeouts, 408, 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.excerpt = excerpt


class RateLimited(TransientError):
    """429 / Retry-After: a connection-wide cooldown that does not consume an attempt."""


class DataError(HubError):
    """Never retried: the event cannot be written as it is. Dead-lettered with a category."""

    def __init__(self, message: str, *,
                 category: DeadCategory = DeadCategory.REJECTED_BY_TARGET,
                 problems: list[dict[str, object]] | None = None,
                 status: int | None = None, excerpt: str = "") -> None:
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


class LedgerUnavailable(Exception):
    """The ledger store (Redis) cannot be reached: not a delivery failure (so not a HubError);
    the receiver answers 503 + Retry-After, a worker leaves its lease to run out."""


class ConfigError(Exception):
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
