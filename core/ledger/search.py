"""What an operator can find an event by (`q` on /api/v1/events and /dead-letters): the
sender's event id and every email address in its body, each lowercased, indexed as the event
is accepted (`search:{term}`), so a search is one range read, whatever the ledger holds."""

from __future__ import annotations

import re

#: an address as it stands in a JSON body (RFC 5322's common form; enough to find by)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
MAX_TERMS = 8  # per event: a body full of addresses indexes its first few
SCANNED = 64 * 1024  # of each body: the work per accept stays bounded
MAX_TERM_LENGTH = 200


def normalise(term: str) -> str:
    return term.strip().lower()[:MAX_TERM_LENGTH]


def search_terms(external_id: str, body: str) -> list[str]:
    terms = [] if external_id.startswith("sha256:") else [normalise(external_id)]
    for match in EMAIL.finditer(body, 0, SCANNED):
        term = normalise(match[0])
        if term not in terms:
            terms.append(term)
            if len(terms) >= MAX_TERMS:
                break
    return [t for t in terms if t]
