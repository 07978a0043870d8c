"""The email addresses in an event's body: what `crmhub events list --email` and
`crmhub events purge --email` find a person's events by (indexed in the archive, matched the
same way in Redis)."""

from __future__ import annotations

import re

#: an address as it appears in JSON text (a quoted string's content, or inside one)
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
#: per event; a body listing more (a mailing list export?) is indexed by its first ones
MAX_EMAILS = 100


def normalized_email(email: str) -> str:
    """As matched: trimmed and lowercased (as the mappings' `normalize: email`)."""
    return email.strip().lower()


def emails_in(body: str) -> list[str]:
    """The distinct addresses in a body's text, normalized, in order of appearance."""
    found: dict[str, None] = {}
    for match in _EMAIL.finditer(body):
        found[normalized_email(match[0])] = None
        if len(found) >= MAX_EMAILS:
            break
    return list(found)
