"""An event's body as Redis holds it: compressed (zlib) when that saves memory.

The body is the bulk of what Redis holds per event (README, "Memory"): a webhook's JSON
compresses to about half. accept stores it under `bodyz` (zlib, binary) when compressing saves
at least SAVES bytes, else as received under `body`; every read of an event's hash goes
through views.decode (or `unpacked` here), which gives back `body`, the text exactly as
received. Edited events (edit.lua) and events recorded before this keep a plain `body`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

BODY = "body"
PACKED = "bodyz"
#: below this a body is stored as is: a zlib stream's own overhead eats the gain
SAVES = 32
LEVEL = 6  # zlib's default: ~30 us for 1 KB; higher levels gain a few bytes for twice that


def packed(body: str) -> tuple[str, bytes | str]:
    """The field and value that hold `body` in the event's hash."""
    raw = body.encode()
    squeezed = zlib.compress(raw, LEVEL)
    if len(squeezed) + SAVES <= len(raw):
        return PACKED, squeezed
    return BODY, body


def unpack(value: bytes) -> str:
    return zlib.decompress(value).decode()


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
