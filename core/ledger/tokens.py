"""OAuth tokens per connection, kept in Redis so every worker shares one access token and
one refresh at a time. Refresh tokens are seeded from the environment once, then kept (and
rotated) here; an operator installs a new one with `crmhub auth set-refresh-token`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.lock import Lock

from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors


@dataclass(frozen=True)
class TokenState:
    access_token: str = ""
    expires_at: float = 0.0  # unix seconds
    refresh_token: str = ""
    obtained_at: float = 0.0
    instance_url: str = ""  # Salesforce: where this token's API calls go


class TokenStore:
    """The ledger's OAuth tokens (`ledger.tokens`)."""

    def __init__(self, client: redis.Redis, keys: LedgerKeys) -> None:
        self.redis = client
        self.keys = keys

    def get(self, connection: str) -> TokenState:
        with translate_redis_errors():
            raw = self.redis.get(self.keys.oauth(connection))
        if not raw:
            return TokenState()
        data: dict[str, Any] = json.loads(raw)
        return TokenState(**data)

    def save(self, connection: str, state: TokenState) -> None:
        """The whole state in one SET: a rotated refresh token is never stored apart from
        the access token it came with (every worker reads both or neither)."""
        with translate_redis_errors():
            self.redis.set(self.keys.oauth(connection), json.dumps(asdict(state)))

    def install_refresh_token(self, connection: str, refresh_token: str) -> None:
        """After re-authorising: the new refresh token, and no access token (so the next
        request refreshes with it)."""
        self.save(connection, TokenState(refresh_token=refresh_token))

    def refresh_failed(self, connection: str, error: str, now: float, expires_at: float) -> None:
        """A refresh failed while the token in hand expires at `expires_at`: counted for the
        credential_expiring alert (core/alerting), which warns before the pause."""
        key = self.keys.oauth_refresh_failure(connection)
        with translate_redis_errors():
            raw = self.redis.get(key)
            failing = json.loads(raw) if raw else {"first_at": now, "failures": 0}
            failing.update(
                last_at=now,
                failures=int(failing["failures"]) + 1,
                error=error[:500],
                token_expires_at=expires_at if raw is None else failing["token_expires_at"],
            )
            self.redis.set(key, json.dumps(failing))

    def refresh_succeeded(self, connection: str) -> None:
        with translate_redis_errors():
            self.redis.delete(self.keys.oauth_refresh_failure(connection))

    def refresh_lock(self, connection: str) -> Lock:
        """One refresh at a time across every worker (refresh tokens may rotate: two
        concurrent refreshes could invalidate each other's)."""
        return self.redis.lock(self.keys.oauth_lock(connection), timeout=30, blocking_timeout=20)
