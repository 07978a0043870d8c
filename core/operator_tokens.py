"""Who may use the operator API and dashboard: bearer tokens, each with a name and a role.

`CRMHUB_OPERATOR_TOKEN` is one admin token named "admin"; `CRMHUB_OPERATOR_TOKENS` adds named
ones (`name:role:token`, comma-separated), so every action is attributed to a name. Parsed
once with the other settings (core/settings.py); a malformed entry is a ConfigProblem that
says which entry, what is wrong and how to write it (the token itself is never repeated).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.errors import ConfigProblem
from core.vocabulary import HUB_ITSELF


class Role(StrEnum):
    ADMIN = "admin"  # reads and acts
    READ_ONLY = "read_only"  # reads only: every action answers 403


class Via(StrEnum):
    """Where an operator action came from (kept with it in the action log)."""

    API = "api"
    DASHBOARD = "dashboard"
    CLI = "cli"


@dataclass(frozen=True)
class OperatorToken:
    name: str
    role: Role
    token: str

    def __repr__(self) -> str:  # never print the secret
        return f"OperatorToken(name={self.name!r}, role={self.role!r})"

    @property
    def fingerprint(self) -> str:
        """A short digest of the token: a dashboard session keeps it, so a rotated or
        removed token ends the sessions it opened."""
        return hashlib.sha256(b"crmhub-operator:" + self.token.encode()).hexdigest()[:32]


NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_TOKEN_LENGTH = 16
FORMAT = "write entries as name:role:token, comma-separated (role admin or read_only)"


def parse_operator_tokens(
    env: Mapping[str, str], problems: list[ConfigProblem]
) -> tuple[OperatorToken, ...]:
    tokens: list[OperatorToken] = []
    single = env.get("CRMHUB_OPERATOR_TOKEN") or ""
    if single:
        _check_secret("CRMHUB_OPERATOR_TOKEN", "the token", single, problems)
        tokens.append(OperatorToken("admin", Role.ADMIN, single))
    raw = env.get("CRMHUB_OPERATOR_TOKENS") or ""
    for index, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        where = f"entry {index}"
        parts = entry.split(":", 2)
        if len(parts) != 3:
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f"{where} has {len(parts)} part(s), expected 3; {FORMAT}",
                )
            )
            continue
        name, role, token = (p.strip() for p in parts)
        if not NAME.match(name):
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f"{where}: the name {name!r} must be 1-64 letters, digits or _.@-",
                )
            )
            continue
        if name == HUB_ITSELF:
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f"{where}: the name {HUB_ITSELF!r} is the hub's own (it pauses a connection "
                    "whose credentials are refused); choose another",
                )
            )
            continue
        if role not in {r.value for r in Role}:
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f"{where} ({name}): role {role!r} is not admin or read_only",
                )
            )
            continue
        if not _check_secret("CRMHUB_OPERATOR_TOKENS", f"{where} ({name})", token, problems):
            continue
        tokens.append(OperatorToken(name, Role(role), token))
    _check_unique(tokens, problems)
    return tuple(tokens)


def _check_secret(key: str, where: str, token: str, problems: list[ConfigProblem]) -> bool:
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or c == "," for c in token):
        problems.append(
            ConfigProblem(
                "environment",
                key,
                f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters without "
                "spaces or commas (make one with `openssl rand -hex 32`)",
            )
        )
        return False
    return True


def _check_unique(tokens: Sequence[OperatorToken], problems: list[ConfigProblem]) -> None:
    seen_names: set[str] = set()
    seen_tokens: set[str] = set()
    for t in tokens:
        if t.name in seen_names:
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f'the name {t.name!r} is given twice ("admin" is CRMHUB_OPERATOR_TOKEN\'s); '
                    "give each token its own name",
                )
            )
        if t.token in seen_tokens:
            problems.append(
                ConfigProblem(
                    "environment",
                    "CRMHUB_OPERATOR_TOKENS",
                    f"{t.name!r} has the same token as another entry; give each its own",
                )
            )
        seen_names.add(t.name)
        seen_tokens.add(t.token)


def authenticate(tokens: Sequence[OperatorToken], given: str) -> OperatorToken | None:
    """The token `given` is, compared in constant time against every configured one (so the
    time taken says nothing about which, or how much of one, matched)."""
    found = None
    for candidate in tokens:
        if hmac.compare_digest(given.encode(), candidate.token.encode()):
            found = candidate
    return found


def by_name(tokens: Sequence[OperatorToken], name: str) -> OperatorToken | None:
    return next((t for t in tokens if t.name == name), None)


def session_secret(explicit: str | None, tokens: Sequence[OperatorToken]) -> str | None:
    """The key that signs dashboard session cookies: CRMHUB_SECRET_KEY, else derived from the
    operator tokens (every web process and host with the same environment derives the same
    key, and changing any token signs every session out). None: no dashboard logins."""
    if explicit:
        return explicit
    if not tokens:
        return None
    material = "\n".join(sorted(f"{t.name}:{t.token}" for t in tokens)).encode()
    return hashlib.sha256(b"crmhub-session-key\n" + material).hexdigest()
