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
from typing import Any

import redis

from core.ledger.keys import FOLD, LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode, text

_OURS = re.compile(r"^evt_[0-9a-f]{24}$")


def folded_id(event_id: str) -> str:
    """The id of an event's first delivery, held in the event's hash (one of our event ids;
    any other event's deliveries have hashes of their own)."""
    return "dlv_" + event_id[4:] if _OURS.match(event_id) else ""


def event_of_folded(delivery_id: str) -> str:
    return "evt_" + delivery_id[4:]


def _folded_view(delivery_id: str, event: dict[str, str]) -> dict[str, str]:
    """A folded delivery's fields out of its event's hash (decoded), {} if it has none."""
    fields = {k[len(FOLD) :]: v for k, v in event.items() if k.startswith(FOLD)}
    if "state" not in fields:
        return {}
    fields.setdefault("event_id", event_of_folded(delivery_id))
    return {"id": delivery_id, **fields}


def read_hashes(client: redis.Redis, keys: LedgerKeys, ids: Sequence[str]) -> list[dict[str, str]]:
    """Several deliveries, every field, in one round trip ({} for one that is gone)."""
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(keys.delivery(i))
            pipe.hgetall(keys.event(event_of_folded(i)))
        replies = pipe.execute()
    out = []
    for n, delivery_id in enumerate(ids):
        own, event = replies[2 * n], replies[2 * n + 1]
        if own:
            out.append(decode(own))
        else:
            out.append(_folded_view(delivery_id, _text_fields(event)))
    return out


def _text_fields(raw: dict[Any, Any]) -> dict[str, str]:
    """An event hash's folded fields as text (its packed body left out: not text)."""
    return {text(k): text(v) for k, v in raw.items() if text(k).startswith(FOLD)}


def read_fields(
    client: redis.Redis, keys: LedgerKeys, ids: Sequence[str], fields: Sequence[str]
) -> list[list[Any]]:
    """Some fields of several deliveries in one round trip, as HMGET answers them (None for a
    field or a delivery that is not there)."""
    folded = [FOLD + f for f in fields] + [FOLD + "state", FOLD + "event_id"]
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(keys.delivery(i), list(fields))
            pipe.hmget(keys.event(event_of_folded(i)), folded)
        replies = pipe.execute()
    out: list[list[Any]] = []
    for n, delivery_id in enumerate(ids):
        own, event = replies[2 * n], replies[2 * n + 1]
        if any(v is not None for v in own) or event[-2] is None:
            out.append(list(own))
            continue
        derived = {"id": delivery_id, "event_id": event[-1] or event_of_folded(delivery_id)}
        out.append(
            [
                v if v is not None else derived.get(f)
                for f, v in zip(fields, event[: len(fields)], strict=True)
            ]
        )
    return out


def exists(client: redis.Redis, keys: LedgerKeys, delivery_id: str) -> bool:
    return bool(read_fields(client, keys, [delivery_id], ["state"])[0][0] is not None)
