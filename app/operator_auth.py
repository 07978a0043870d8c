"""Who is asking, on the operator surface: a bearer token on /api/v1, a session cookie opened
with a token on /ui. Tokens and roles come from the settings (core/operator_tokens.py);
comparisons are constant-time; nothing here ever echoes a token back."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request

from core.operator_tokens import OperatorToken, Role, Via, authenticate, by_name
from core.settings import Settings

ENABLE_HINT = (
    "the operator API is off: no token is configured. Set CRMHUB_OPERATOR_TOKEN (an admin "
    "token, named admin) or CRMHUB_OPERATOR_TOKENS (name:role:token, comma-separated; role "
    "admin or read_only) in the web process's environment and restart it"
)


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role
    via: Via

    @property
    def may_act(self) -> bool:
        return self.role == Role.ADMIN


def bearer_operator(settings: Settings, request: Request) -> Operator | None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    token = authenticate(settings.operator_tokens, given.strip())
    return Operator(token.name, token.role, Via.API) if token else None


def login(settings: Settings, given: str) -> OperatorToken | None:
    return authenticate(settings.operator_tokens, given.strip())


def session_operator(
    settings: Settings, name: str | None, fingerprint: str | None
) -> Operator | None:
    """The operator a dashboard session belongs to, while its token is still configured
    unchanged (a rotated or removed token ends its sessions)."""
    if not name or not fingerprint:
        return None
    token = by_name(settings.operator_tokens, name)
    if token is None:
        return None
    import hmac

    if not hmac.compare_digest(token.fingerprint, fingerprint):
        return None
    return Operator(token.name, token.role, Via.DASHBOARD)
