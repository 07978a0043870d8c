"""What a Zoho CRM connection (`connector: zoho`) must say, checked with the rest of the
configuration: the data centre's accounts server, OAuth2 (Zoho has no other way in for a
server), and only the modules the connector writes (Zoho's own API names, case and all)."""

from __future__ import annotations

from collections.abc import Iterator

from core.config.model import Config

#: the modules the Zoho connector writes and reads (API names, as Zoho spells them)
ZOHO_MODULES = ("Contacts", "Accounts", "Leads")


def zoho_problems(config: Config) -> Iterator[tuple[str, str]]:
    """(key, message) for each mistake in a Zoho connection or a mapping writing to one."""
    zoho = {name for name, c in config.connections.items() if c.connector == "zoho"}
    for name in sorted(zoho):
        conn = config.connections[name]
        where = f"connections.{name}"
        if not conn.accounts_url:
            yield (
                f"{where}.accounts_url",
                "a zoho connection needs `accounts_url`, its data centre's accounts server "
                "(https://accounts.zoho.com, .eu, .in, .com.au, .jp, .com.cn, zohocloud.ca, "
                ".sa); API calls then go to the api_domain the token answer names",
            )
        if conn.auth.get("type") != "oauth2":
            yield (
                f"{where}.auth.type",
                "a zoho connection authenticates with `type: oauth2` (a Self Client's "
                "refresh token, with client_id_env, client_secret_env, refresh_token_env)",
            )
        for obj in conn.objects:
            if obj not in ZOHO_MODULES:
                yield (f"{where}.objects.{obj}", _unknown(obj))
    for mapping in config.mappings.values():
        if mapping.connection in zoho and mapping.object not in ZOHO_MODULES:
            yield (f"mappings.{mapping.name}.object", _unknown(mapping.object))
        for related in mapping.related:
            if mapping.connection in zoho and related.object not in ZOHO_MODULES:
                yield (
                    f"mappings.{mapping.name}.related.{related.link}.object",
                    _unknown(related.object),
                )


def _unknown(module: str) -> str:
    return f"unknown Zoho CRM module {module!r}; expected one of: {', '.join(ZOHO_MODULES)}"
