"""What an operator can find an event by (`q` on /api/v1/events and /dead-letters): the
sender's event id and every email address in its body, each lowercased, indexed as the event
is accepted (one sorted set, `search`, of `term`, NUL, received ms, NUL, event id), so a
search is one range read, whatever the ledger holds."""

from __future__ import annotations

import re

#: an address as it stands in a JSON body (RFC 5322's common form; enough to find by)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
MAX_TERMS = 8  # per event: a body full of addresses indexes its first few
SCANNED = 64 * 1024  # of each body: the work per accept stays bounded
MAX_TERM_LENGTH = 200


def normalise(term: str) -> str:
    """Lowercased, trimmed, bounded, and without NUL or the control characters below it
    that separate a term from its event in the index (core/ledger/pages.py)."""
    return term.strip().lower().replace("\x00", "").replace("\x01", "")[:MAX_TERM_LENGTH]


def emails_in(text: str, limit: int, scanned: int | None = None) -> list[str]:
    """The distinct addresses in `text` (its first `scanned` characters), normalised, in
    order of appearance, at most `limit`: what the search index, the archive's email index
    and `events purge --email` all find a person by."""
    found: dict[str, None] = {}
    for match in EMAIL.finditer(text, 0, len(text) if scanned is None else scanned):
        found[normalise(match[0])] = None
        if len(found) >= limit:
            break
    return list(found)


def search_terms(external_id: str, body: str) -> list[str]:
    terms = [] if external_id.startswith("sha256:") else [normalise(external_id)]
    for email in emails_in(body, MAX_TERMS, SCANNED):
        if email not in terms and len(terms) < MAX_TERMS:
            terms.append(email)
    return [t for t in terms if t]
