"""The email addresses in an event's body: what `crmhub events list --email` and
`crmhub events purge --email` find a person's events by (indexed in the archive, matched the
same way in Redis)."""

from __future__ import annotations

from core.ledger.search import emails_in as _emails_in
from core.ledger.search import normalise

#: per event; a body listing more (a mailing list export?) is indexed by its first ones
MAX_EMAILS = 100


def normalized_email(email: str) -> str:
    """As matched: trimmed and lowercased (as the mappings' `normalize: email`)."""
    return normalise(email)


def emails_in(body: str) -> list[str]:
    """The distinct addresses in a body's text, normalized, in order of appearance (one
    pattern with the hot search index: core/ledger/search.py)."""
    return _emails_in(body, MAX_EMAILS)
