"""Checks of a connection that depend on its connector (the auth types each one takes)."""

from __future__ import annotations

from collections.abc import Iterator

from core.config.model import ConnectionConfig

#: the auth types a connector takes, where it takes fewer than all
AUTH_TYPES = {"pipedrive": ("api_token", "oauth2")}
#: auth types only some connectors take
AUTH_OWNERS = {"api_token": ("pipedrive",)}


def auth_problems(conn: ConnectionConfig) -> Iterator[tuple[str, str]]:
    """(key, message) for an auth type the connection's connector does not take."""
    kind = str(conn.auth.get("type", "none"))
    key = f"connections.{conn.name}.auth.type"
    allowed = AUTH_TYPES.get(conn.connector)
    if allowed is not None and kind not in allowed:
        yield key, f"the {conn.connector} connector takes auth type {' or '.join(allowed)}"
    elif kind in AUTH_OWNERS and conn.connector not in AUTH_OWNERS[kind]:
        yield (
            key,
            f"auth type {kind!r} is for the {', '.join(AUTH_OWNERS[kind])} connector; "
            "use `header` or `bearer` for another API",
        )
