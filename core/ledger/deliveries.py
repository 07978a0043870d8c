"""Where a delivery's fields live, and every read of them (README, "Memory").

An event's first delivery (its id `dlv_` and the event id's 24 hex digits: folded_id) is held
in its event's hash, each of its fields' names behind FOLD (`.state`, `.rk`...; its `id` and
`event_id` are not stored but follow from its id, unless an edit re-pointed it, which stores
`.event_id`): an event waiting for its one delivery is then one key, not two. Any other
delivery (fan-out to several mappings, and every delivery recorded before this layout) has its
own hash, `dlv:{id}`. The Lua scripts reach a delivery only through common.lua's `d*` helpers
and Python only through the functions here, so no caller needs to know which it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

import redis

from core.ledger.keys import FOLD, LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, text

_OURS = re.compile(r"^evt_[0-9a-f]{24}$")

#: a folded delivery's common fields by a short name (FOLD and one letter: ~75 B less per
#: event held); any other field is FOLD and its name. common.lua gets the same table
#: (lua_table, prepended to every script by core/ledger/scripts.py).
FOLDED: dict[str, str] = {
    name: FOLD + letter
    for name, letter in {
        "state": "s",
        "seq": "q",
        "rk": "k",
        "updated_at": "u",
        "published_at": "p",
        "msg": "m",
        "mapping": "g",
        "connection": "c",
        "object": "o",
        "attempts": "a",
        "created_at": "t",
        "occurred_ms": "r",
        "held_at": "h",
        "due_at": "d",
        "token": "n",
        "lease_until": "l",
        "first_attempt_at": "f",
        "event_id": "e",
        "original_event_id": "E",
        "dead_at": "x",
        "dead_category": "y",
        "dead_error": "z",
        "dead_record": "w",
        "replayed_at": "v",
        "paused_ms": "P",
        "superseded_by_ms": "S",
    }.items()
}
UNFOLDED = {short: name for name, short in FOLDED.items()}


def folded_name(name: str) -> str:
    return FOLDED.get(name) or FOLD + name


def unfolded_name(stored: str) -> str:
    return UNFOLDED.get(stored) or stored[len(FOLD) :]


def lua_table() -> str:
    """FOLDED and UNFOLDED as Lua, for common.lua's d* helpers."""
    pairs = ", ".join(f"['{n}'] = '{s}'" for n, s in FOLDED.items())
    inverse = ", ".join(f"['{s}'] = '{n}'" for n, s in FOLDED.items())
    return f"local FOLDED = {{{pairs}}}\nlocal UNFOLDED = {{{inverse}}}\n"


def in_record_key(rk: str) -> dict[str, str]:
    """The connection and object a record key begins with (core/mapping/record.py: always
    `{connection}:{object}:...`): a folded delivery stores them only when it does not."""
    parts = rk.split(":", 2)
    return {"connection": parts[0], "object": parts[1]} if len(parts) == 3 else {}


def _with_defaults(fields: dict[str, str]) -> dict[str, str]:
    """What a field not written reads as (common.lua dfallback the same): `attempts` is 0
    until the first, `updated_at` is `created_at` until the delivery changes."""
    fields.setdefault("attempts", "0")
    if "updated_at" not in fields and "created_at" in fields:
        fields["updated_at"] = fields["created_at"]
    return fields


def folded_id(event_id: str) -> str:
    """The id of an event's first delivery, held in the event's hash (one of our event ids;
    any other event's deliveries have hashes of their own)."""
    return "dlv_" + event_id[4:] if _OURS.match(event_id) else ""


def event_of_folded(delivery_id: str) -> str:
    return "evt_" + delivery_id[4:]


def _folded_view(delivery_id: str, event: dict[str, str]) -> dict[str, str]:
    """A folded delivery's fields out of its event's hash (decoded), {} if it has none."""
    fields = {unfolded_name(k): v for k, v in event.items() if k.startswith(FOLD)}
    if "state" not in fields:
        return {}
    fields.setdefault("event_id", event_of_folded(delivery_id))
    fields |= {k: v for k, v in in_record_key(fields.get("rk", "")).items() if k not in fields}
    if "received_at" in event:  # a folded delivery was created as its event was received
        fields.setdefault("created_at", event["received_at"])
    return _with_defaults({"id": delivery_id, **fields})


def read_hashes(client: redis.Redis, keys: LedgerKeys, ids: Sequence[str]) -> list[dict[str, str]]:
    """Several deliveries, every field, in one round trip ({} for one that is gone). A folded
    one's fields are read by name pattern (HSCAN MATCH), never its event's packed body: that is
    not text, and a client that decodes replies could not read it."""
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for i in ids:
            event = keys.event(event_of_folded(i))
            pipe.hgetall(keys.delivery(i))
            pipe.hscan(event, 0, match=FOLD + "*", count=1000)
            pipe.hget(event, "received_at")
        replies = pipe.execute()
    out = []
    for n, delivery_id in enumerate(ids):
        own, (cursor, folded), received = replies[3 * n : 3 * n + 3]
        if own:
            out.append(_with_defaults(decode(own)))
            continue
        folded = dict(folded)
        event = keys.event(event_of_folded(delivery_id))
        with translate_redis_errors():
            while int(cursor):  # a hash too large for one answer (a body past the listpack)
                cursor, more = client.hscan(event, cursor, match=FOLD + "*", count=1000)
                folded.update(cast(dict[Any, Any], more))
        fields = {text(k): text(v) for k, v in folded.items()}
        if received is not None:
            fields["received_at"] = text(received)
        out.append(_folded_view(delivery_id, fields))
    return out


def read_fields(
    client: redis.Redis, keys: LedgerKeys, ids: Sequence[str], fields: Sequence[str]
) -> list[list[Any]]:
    """Some fields of several deliveries in one round trip, as HMGET answers them (None for a
    field or a delivery that is not there)."""
    # every delivery has a created_at (whether it is there at all) and a record key
    asked = [*fields, "rk", "created_at"]
    folded = [folded_name(f) for f in asked] + [
        "received_at",
        folded_name("state"),
        folded_name("event_id"),
    ]
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(keys.delivery(i), asked)
            pipe.hmget(keys.event(event_of_folded(i)), folded)
        replies = pipe.execute()
    out: list[list[Any]] = []
    for n, delivery_id in enumerate(ids):
        own, event = replies[2 * n], replies[2 * n + 1]
        if own[-1] is not None:
            values, derived = list(own), {}
        elif event[-2] is not None:
            values = event[: len(asked)]
            values[-1] = values[-1] or event[-3]  # created as its event was received
            derived = {
                "id": delivery_id,
                "event_id": event[-1] or event_of_folded(delivery_id),
                **{k: v.encode() for k, v in in_record_key(text(values[-2] or "")).items()},
            }
        else:
            out.append([None] * len(fields))
            continue
        derived |= {"attempts": b"0", "created_at": values[-1], "updated_at": values[-1]}
        out.append(
            [
                v if v is not None else derived.get(f)
                for f, v in zip(fields, values[: len(fields)], strict=True)
            ]
        )
    return out


def exists(client: redis.Redis, keys: LedgerKeys, delivery_id: str) -> bool:
    return bool(read_fields(client, keys, [delivery_id], ["state"])[0][0] is not None)
