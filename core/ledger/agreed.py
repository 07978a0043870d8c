"""What a two-way pair knows of each record (core/two_way.py decides with it).

`<prefix>:agreed:{pair}:{record}` (hash; `record`: the pair's shared match value, e.g. the
normalised email): per slot `<side>:<field>`, `v:<slot>` the value the side holds (canonical
text), `t:<slot>` the stamp (epoch ms) and `o:<slot>` the side of the change that settled it;
`id:<side>` the record's id on that side (the link between the twins). It expires `keep_days`
after its last change: a record quiet for longer starts again as unknown (its next change
is compared with the twin's record as it is, and newest wins).

Plain commands (one pipeline each way): a pair's two directions write different slots for one
change, and a read that lags a concurrent write is caught by the twin's read before writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from core.ledger.store import Ledger
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text
from core.two_way import Known


class RecordKnown(NamedTuple):
    """What a pair knows of a record, as an operator is shown it (`crmhub pairs show`)."""

    known: Known
    ids: dict[str, str]  # the twins' ids by side
    forgotten_in: int | None  # seconds until keep_days end it; None when nothing is known


def _known(raw: Mapping[Any, Any]) -> Known:
    values: dict[str, str] = {}
    stamps: dict[str, int] = {}
    origins: dict[str, str] = {}
    written: dict[str, int] = {}
    for name, value in raw.items():
        kind, _, where = text(name).partition(":")
        if kind == "v":
            values[where] = text(value)
        elif kind == "t":
            stamps[where] = int(text(value))
        elif kind == "o":
            origins[where] = text(value)
        elif kind == "w":
            written[where] = int(text(value))
    return Known(values, stamps, origins, written)


def read_known(ledger: Ledger, pair: str, record: str) -> Known:
    with translate_redis_errors():
        return _known(ledger.redis.hgetall(ledger.keys.agreed(pair, record)))


def record_known(
    ledger: Ledger,
    pair: str,
    record: str,
    settled: Mapping[str, tuple[str, int, str]],
    ids: Mapping[str, str],
    keep_seconds: int,
    *,
    written: Mapping[str, int] | None = None,
) -> None:
    """Store what the sides now hold (core.two_way.settled), when the hub wrote the slots it
    wrote, and the twins' ids."""
    fields: dict[str, str] = {f"id:{side}": ident for side, ident in ids.items() if ident}
    fields |= {f"w:{where}": str(at) for where, at in (written or {}).items()}
    for where, (value, stamp, side) in settled.items():
        fields |= {f"v:{where}": value, f"t:{where}": str(stamp), f"o:{where}": side}
    if not fields:
        return
    key = ledger.keys.agreed(pair, record)
    with translate_redis_errors():
        pipe = ledger.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, keep_seconds)
        pipe.execute()


def record_known_view(ledger: Ledger, pair: str, record: str) -> RecordKnown:
    """What the pair knows of the record, the twins' ids (which record is this one's twin?)
    and when it will be forgotten, in one round trip."""
    key = ledger.keys.agreed(pair, record)
    with translate_redis_errors():
        pipe = ledger.redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
    ids = {text(k).partition(":")[2]: text(v) for k, v in raw.items() if text(k).startswith("id:")}
    return RecordKnown(_known(raw), ids, int(ttl) if int(ttl) >= 0 else None)
