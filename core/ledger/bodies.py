"""An event's body as Redis holds it: compressed (zlib) when that saves memory.

The body is the bulk of what Redis holds per event (README, "Memory"): a webhook's JSON
compresses to about half. accept stores it under `bodyz` (zlib, binary) when compressing saves
at least SAVES bytes, else as received under `body`; every read of an event's hash goes
through views.decode (or `unpacked` here), which gives back `body`, the text exactly as
received. Edited events (edit.lua) and events recorded before this keep a plain `body`.

A packed body is a version byte and a raw deflate stream made with that version's preset
dictionary (core/ledger/body_dictionary.py: the words webhooks repeat, ~590 -> ~320 B for a
1 KB Stripe body); one packed before dictionaries is a zlib stream (its first byte 0x78, never
a version), and stays readable.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from core.ledger.body_dictionary import CURRENT, DICTIONARIES

BODY = "body"
PACKED = "bodyz"
#: below this a body is stored as is: a zlib stream's own overhead eats the gain
SAVES = 32
LEVEL = 6  # zlib's default: ~30 us for 1 KB; higher levels gain a few bytes for twice that
RAW = -15  # deflate without zlib's header and checksum (6 bytes a body; Redis keeps it intact)
ZLIB_HEADER = 0x78  # the first byte of every zlib stream (a body packed before dictionaries)


def packed(body: str) -> tuple[str, bytes | str]:
    """The field and value that hold `body` in the event's hash."""
    raw = body.encode()
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, RAW, zdict=DICTIONARIES[CURRENT])
    squeezed = bytes([CURRENT]) + packer.compress(raw) + packer.flush()
    if len(squeezed) + SAVES <= len(raw):
        return PACKED, squeezed
    return BODY, body


def unpack(value: bytes) -> str:
    if value[0] == ZLIB_HEADER:
        return zlib.decompress(value).decode()
    dictionary = DICTIONARIES.get(value[0])
    if dictionary is None:
        raise ValueError(
            f"an event body packed with dictionary version {value[0]}, which this hub does not "
            f"know (it knows {sorted(DICTIONARIES)}): run the hub version that held it"
        )
    unpacker = zlib.decompressobj(RAW, zdict=dictionary)
    return (unpacker.decompress(value[1:]) + unpacker.flush()).decode()


def unpacked(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A hash as read (bytes or text keys) with a packed body given back as `body`."""
    out = dict(raw)
    for key in (PACKED, PACKED.encode()):
        value = out.pop(key, None)
        if value is not None:
            out[BODY if isinstance(key, str) else BODY.encode()] = unpack(
                value if isinstance(value, bytes) else value.encode("latin-1")
            )
    return out
