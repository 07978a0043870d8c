"""An event hash's fields that are not written because they follow from the rest, and every
read that gives them back (README, "Memory").

An event's `id` is its key's; its `state` is `recorded` unless it is unrouted or an echo (only
those two write it); its `deliveries` (ids, comma-separated) are not written when its one
delivery is the one folded into its hash (core/ledger/deliveries.py folded_id): the common
case, a webhook routed to one mapping. Together ~110-140 B less per held event, the step into
the next smaller allocation. An event recorded before this layout has all three written, and
reads the same. common.lua's event_deliveries is the scripts' side of `complete`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from core.ledger.bodies import BODY, HEADERS, PACKED
from core.ledger.deliveries import folded_id
from core.ledger.keys import LedgerKeys
from core.ledger.translate import translate_redis_errors
from core.ledger.views import decode
from core.vocabulary import EventState

#: written for every event: whether any is there tells whether the event is
ALWAYS = "source"


def written(event_id: str, state: EventState, delivery_ids: Sequence[str]) -> list[str]:
    """The fields of `id`, `state` and `deliveries` an event's hash must hold (flat)."""
    out: list[str] = []
    if state != EventState.RECORDED:
        out += ["state", state.value]
    if list(delivery_ids) != [folded_id(event_id)]:  # "" for an id that is not ours
        out += ["deliveries", ",".join(delivery_ids)]
    return out


def delivery_ids(listed: str) -> list[str]:
    """An event's deliveries' ids from its `deliveries` field as `complete` gives it back."""
    return [i for i in listed.split(",") if i]


def complete(
    event_id: str, raw: Mapping[str, str], asked: Sequence[str] | None = None
) -> dict[str, str]:
    """An event's fields as read (decoded: all of them, or those `asked`) with those not
    written put back; {} stays {} (the event is gone)."""
    if not raw:
        return {}
    unwritten = {
        "id": event_id,
        "state": EventState.RECORDED.value,
        "deliveries": folded_id(event_id),
    }
    if asked is not None:  # a field not asked for says nothing by its absence
        unwritten = {k: v for k, v in unwritten.items() if k in asked}
    return {**unwritten, **raw}


def read(
    client: redis.Redis, keys: LedgerKeys, event_ids: Sequence[str], fields: Sequence[str]
) -> list[dict[str, str]]:
    """Some fields of several events in one round trip, those not written put back ({} for
    an event that is gone); `body` is the text as received, however it is held
    (core/ledger/bodies.py)."""
    # the packed body holds the headers too; ALWAYS tells whether the event is there
    asked = [*fields, ALWAYS, *((PACKED,) if BODY in fields or HEADERS in fields else ())]
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.hmget(keys.event(event_id), asked)
        replies: list[Any] = pipe.execute()
    return [
        complete(
            event_id,
            decode({n: v for n, v in zip(asked, reply, strict=True) if v is not None}),
            fields,
        )
        for event_id, reply in zip(event_ids, replies, strict=True)
    ]


def read_delivery_ids(
    client: redis.Redis, keys: LedgerKeys, event_ids: Sequence[str]
) -> list[list[str]]:
    """Several events' deliveries' ids in one round trip ([] for an event that is gone)."""
    rows = read(client, keys, event_ids, ("deliveries",))
    return [
        delivery_ids(row["deliveries"]) if row else []
        for event_id, row in zip(event_ids, rows, strict=True)
    ]
