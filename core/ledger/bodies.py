"""An event's body as Redis holds it: compressed (zlib) when that saves memory.

The body is the bulk of what Redis holds per event (README, "Memory"): a webhook's JSON
compresses to about half. accept stores it under `bodyz` (zlib, binary) when compressing saves
at least SAVES bytes, else as received under `body`; every read of an event's hash goes
through views.decode (or `unpacked` here), which gives back `body`, the text exactly as
received. Edited events (edit.lua) and events recorded before this keep a plain `body`.

A packed body is a version byte and a raw deflate stream made with that version's preset
dictionary (core/ledger/body_dictionary.py: the words webhooks repeat, ~590 -> ~320 B for a
1 KB Stripe body), the event's headers (JSON) in the same stream before it; one packed before
dictionaries is a zlib stream (its first byte 0x78, never
a version), and stays readable.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from core.errors import LedgerUnavailable
from core.ledger.body_dictionary import CURRENT, DICTIONARIES

BODY = "body"
PACKED = "bodyz"
#: below this a body is stored as is: a zlib stream's own overhead eats the gain
SAVES = 32
LEVEL = 6  # zlib's default: ~30 us for 1 KB; higher levels gain a few bytes for twice that
RAW = -15  # deflate without zlib's header and checksum (6 bytes a body; Redis keeps it intact)
ZLIB_HEADER = 0x78  # the first byte of every zlib stream (a body packed before dictionaries)
#: a packed value's first byte: its dictionary's version, this bit set when the headers are in
#: it too (their ~140 B of JSON compress to ~30 with the body, in one field less)
WITH_HEADERS = 0x40
FORMAT_WITH_HEADERS = CURRENT | WITH_HEADERS
HEADERS = "headers"


def packed(body: str, headers: str) -> tuple[str, bytes | str, str | None]:
    """How `body` and its `headers` (JSON) are held in the event's hash: the body's field and
    value, and the headers apart (None when they are packed with the body: a packed value is
    then FORMAT_WITH_HEADERS, the headers' compact JSON, a newline, the body)."""
    raw = body.encode()
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, RAW, zdict=DICTIONARIES[CURRENT])
    together = f"{headers}\n".encode() + raw
    squeezed = bytes([FORMAT_WITH_HEADERS]) + packer.compress(together) + packer.flush()
    if len(squeezed) + SAVES <= len(together):
        return PACKED, squeezed, None
    return BODY, body, headers


def unpack(value: bytes) -> tuple[str, str | None]:
    """A packed value's body, and its headers when they were packed with it."""
    if value[0] == ZLIB_HEADER:  # packed before dictionaries: the body alone
        return zlib.decompress(value).decode(), None
    version = value[0] & ~WITH_HEADERS
    dictionary = DICTIONARIES.get(version)
    if dictionary is None:
        raise LedgerUnavailable(
            f"an event body packed with dictionary version {version}, which this hub does not "
            f"know (it knows {sorted(DICTIONARIES)}): run the hub version that held it"
        )
    unpacker = zlib.decompressobj(RAW, zdict=dictionary)
    text = (unpacker.decompress(value[1:]) + unpacker.flush()).decode()
    if value[0] & WITH_HEADERS:
        headers, body = text.split("\n", 1)
        return body, headers
    return text, None


def unpacked(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A hash as read (bytes or text keys) with a packed body given back as `body` (and
    `headers`, when packed with it)."""
    out = dict(raw)
    for key in (PACKED, PACKED.encode()):
        value = out.pop(key, None)
        if value is not None:
            body, headers = unpack(value if isinstance(value, bytes) else value.encode("latin-1"))
            as_key = (lambda name: name) if isinstance(key, str) else (lambda name: name.encode())
            out[as_key(BODY)] = body
            if headers is not None:
                out[as_key(HEADERS)] = headers
    return out
