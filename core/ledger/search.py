"""What an operator can find an event by (`q` on /api/v1/events and /dead-letters): the
sender's event id and every email address in its body, each lowercased, indexed as the event
is accepted (one sorted set, `search`, read by member range), so a search is one range read,
whatever the ledger holds.

An entry (common.lua search_entry) is \1, the first 8 bytes of the term's SHA-1 and the
event's id as its 12 bytes (6 of milliseconds: a term's entries sort by time): 21 bytes, where
the term and time spelled out took ~70 (README, "Memory"). Entries written before (`term`,
NUL, received ms, NUL, event id) are still read (LEGACY) until their events leave."""

from __future__ import annotations

import hashlib
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


def indexed_terms(body: str) -> list[str]:
    """What accept indexes an event by: the addresses in its body. Its sender's id is found
    through its dedupe key instead (core/ledger/pages.py: an entry less per event held)."""
    return emails_in(body, MAX_TERMS, SCANNED)


def search_terms(external_id: str, body: str) -> list[str]:
    """Every term an event may have an entry for: its sender's id (events recorded before
    this layout have an entry for it) and the addresses in its body."""
    terms = [] if external_id.startswith("sha256:") else [normalise(external_id)]
    for email in emails_in(body, MAX_TERMS, SCANNED):
        if email not in terms and len(terms) < MAX_TERMS:
            terms.append(email)
    return [t for t in terms if t]


ENTRY = b"\x01"
DIGEST = 8  # bytes of the term's SHA-1: a false match once in 2**64 terms


def term_digest(term: str) -> str:
    """A term's digest as an index entry holds it (common.lua search_entry), in hex."""
    return hashlib.sha1(term.encode()).digest()[:DIGEST].hex()


def entry_prefix(term: str) -> bytes:
    """What every index entry of `term` starts with (common.lua search_entry)."""
    return ENTRY + bytes.fromhex(term_digest(term))


def id_bound(ms: int) -> bytes:
    """The first 6 bytes of the ids of events received at `ms` (core/ids.py: 12 hex digits
    of milliseconds lead an id), to bound a range by time."""
    return ms.to_bytes(6, "big")


def event_id_of_entry(member: bytes) -> str:
    """The event an index entry names: its id after the term's digest, as bytes when it is
    one of ours (common.lua id_bytes), else as text."""
    raw = member[len(ENTRY) + DIGEST :]
    return "evt_" + raw.hex() if len(raw) == 12 else raw.decode()
