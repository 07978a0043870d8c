"""Pages of the ledger's lists for the operator API and dashboard, read in Redis: a range of
a sorted set from a cursor, with the rows' fields in one pipelined round trip per chunk, and
a bounded amount of work per request, however many dead letters or events the ledger holds.

A cursor is the last row's (score, id): the next page starts strictly after it in the index's
order (newest first; equal scores in reverse id order, as ZREVRANGEBYSCORE gives them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from core.errors import BadCursor
from core.ids import id_ms
from core.ledger import deliveries, event_fields
from core.ledger.keys import LedgerKeys, StatsHash, dedupe_digest
from core.ledger.replies import event_id_of
from core.ledger.search import entry_prefix, event_id_of_entry, id_bound, normalise
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text

CHUNK = 200
#: index entries one request looks at, at most: a rare filter over a large index answers a
#: short page (even an empty one) with a next_cursor rather than reading everything
SCAN_BUDGET = 5000
#: events a `q` search takes from the term index, at most
SEARCH_LIMIT = 500

EVENT_FIELDS = ("id", "source", "type", "external_id", "received_at", "state", "deliveries")
_CURSOR = re.compile(r"^(-?\d{1,20})\.([A-Za-z0-9_-]{1,80})$")
ID = re.compile(r"^(dlv|evt)_[0-9a-f]{24}$")


@dataclass(frozen=True, order=True)
class Cursor:
    score: int
    id: str

    def __str__(self) -> str:
        return f"{self.score}.{self.id}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        if not value:
            return None
        match = _CURSOR.match(value)
        if not match:
            raise BadCursor(f"cursor {value[:40]!r} is not one a page gave out (use next_cursor)")
        return cls(int(match[1]), match[2])


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, str]]
    next_cursor: str | None
    total: int | None = None


class LedgerPages:
    """Paged reads (a base of core.ledger.Ledger)."""

    redis: redis.Redis
    keys: LedgerKeys
    delivery_fields: Callable[[Sequence[str], Sequence[str]], list[dict[str, str]]]

    def _fields(self, kind: str, ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, str]]:
        if kind != "dlv":
            return event_fields.read(self.redis, self.keys, ids, fields)
        replies = deliveries.read_fields(self.redis, self.keys, ids, fields)
        return [
            {n: text(v) for n, v in zip(fields, reply, strict=True) if v is not None}
            for reply in replies
        ]

    def _walk(
        self,
        key: str,
        *,
        low: int | None,
        high: int | None,
        cursor: Cursor | None,
        limit: int,
        rows_of: Callable[[list[str]], list[dict[str, str]]],
        keep: Callable[[dict[str, str]], bool],
    ) -> tuple[list[dict[str, str]], str | None]:
        """Up to `limit` rows of the index `key` (newest first, after `cursor`, scores between
        `low` and `high`) that `keep` keeps, and the cursor of the next page (None: no more)."""
        top: int | float = high if high is not None else float("inf")
        if cursor is not None:
            top = min(top, cursor.score)
        bottom = low if low is not None else "-inf"
        rows: list[dict[str, str]] = []
        offset = scanned = 0
        last: Cursor | None = None  # the last entry looked at
        last_kept: Cursor | None = None
        while scanned < SCAN_BUDGET:
            with translate_redis_errors():
                batch = self.redis.zrevrangebyscore(
                    key,
                    "+inf" if top == float("inf") else top,
                    bottom,
                    start=offset,
                    num=CHUNK,
                    withscores=True,
                )
            offset += len(batch)
            entries = [
                Cursor(int(score), text(member))
                for member, score in cast(list[tuple[bytes, float]], batch)
                if cursor is None or not (int(score) == cursor.score and text(member) >= cursor.id)
            ]
            for entry, raw in zip(entries, rows_of([e.id for e in entries]), strict=True):
                scanned += 1
                if raw and keep(raw):
                    if len(rows) == limit:  # one more exists: the page ends at the last kept
                        return rows, str(last_kept)
                    rows.append(raw)
                    last_kept = entry
                last = entry
            if len(batch) < CHUNK:
                return rows, None
        return rows, str(last) if last else None

    def _search_events(
        self, term: str, low: int | None, high: int | None, given: str = ""
    ) -> list[str]:
        """Events `term` finds, newest first: the event of that id, the event a sender sent
        with that id (`given`, as typed: through its dedupe key, in each source that has sent
        webhooks; so within the dedupe window, the archive indexes it for good), or those of
        the term index (an email address), at most SEARCH_LIMIT."""
        with translate_redis_errors():
            if term.startswith("evt_") and self.redis.exists(self.keys.event(term)):
                return [term]
            sent = self._sent_as(given.strip() or term, low, high)
            # one index for every term, read by member range (core/ledger/search.py)
            prefix = entry_prefix(term)
            found = self.redis.zrevrangebylex(
                self.keys.search(),
                b"[" + prefix + (b"\xff" * 13 if high is None else id_bound(high + 1)),
                b"[" + prefix + (id_bound(low) if low is not None else b""),
                start=0,
                num=SEARCH_LIMIT,
            )
            ids = [event_id_of_entry(cast(bytes, i)) for i in found]
            # LEGACY: entries written before (`term\0{ms:013d}\0{event id}`), still held
            legacy = self.redis.zrevrangebylex(
                self.keys.search(),
                f"({term}\x01" if high is None else f"({term}\x00{high:013d}\x01",
                f"[{term}\x00" if low is None else f"[{term}\x00{low:013d}",
                start=0,
                num=SEARCH_LIMIT,
            )
        found_ids = dict.fromkeys(sent + ids + [text(i).rsplit("\x00", 1)[-1] for i in legacy])
        return list(found_ids)[:SEARCH_LIMIT]

    def _sent_as(self, external_id: str, low: int | None, high: int | None) -> list[str]:
        """The events sent with this sender's id, by their dedupe keys (one per source)."""
        stats = self.redis.hkeys(self.keys.stats(StatsHash.WEBHOOKS))
        sources = sorted({text(f).rsplit("|", 1)[0] for f in stats})
        pipe = self.redis.pipeline(transaction=False)
        for source in sources:
            pipe.get(self.keys.dedupe(dedupe_digest(source, external_id)))
        ids = [event_id_of(v) for v in pipe.execute() if v is not None]
        return [
            i
            for i in ids
            if (low is None or id_ms(i) >= low) and (high is None or id_ms(i) <= high)
        ]

    # events ----------------------------------------------------------------------------
    def event_page(
        self,
        *,
        source: str | None,
        type: str | None,
        state: str | None,
        q: str | None,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        cursor: Cursor | None,
        delivery_states: frozenset[str],
    ) -> Page:
        """Events newest first. `state`: an event's state, or a delivery state (any of its
        deliveries in it: one of `delivery_states`)."""

        def keep(raw: dict[str, str]) -> bool:
            return (
                (not source or raw.get("source") == source)
                and (not type or raw.get("type") == type)
                and (not state or state in delivery_states or raw.get("state") == state)
            )

        def rows_of(ids: list[str]) -> list[dict[str, str]]:
            rows = self._fields("evt", ids, EVENT_FIELDS)
            if state in delivery_states:  # then the deliveries' states decide (one round trip)
                owners = [
                    (row, i) for row in rows for i in row.get("deliveries", "").split(",") if i
                ]
                found = self._fields("dlv", [i for _, i in owners], ("state",))
                having = {
                    id(row)
                    for (row, _), d in zip(owners, found, strict=True)
                    if d.get("state") == state
                }
                for row in rows:
                    if id(row) not in having:
                        row.clear()
            return rows

        if q:
            ids = self._search_events(normalise(q), since_ms, until_ms, q)
            rows = [r for r in rows_of(ids) if r and keep(r)]
            return page_of_sorted(rows, "received_at", limit, cursor)
        key = self.keys.source_events(source) if source else self.keys.events()
        rows, following = self._walk(
            key,
            low=since_ms,
            high=until_ms,
            cursor=cursor,
            limit=limit,
            rows_of=rows_of,
            keep=keep,
        )
        return Page(rows, following)


def page_of_sorted(
    rows: list[dict[str, str]], score_field: str, limit: int, cursor: Cursor | None
) -> Page:
    """A page of rows already sorted newest first (a search's few matches)."""
    after = [
        r for r in rows if cursor is None or Cursor(int(r.get(score_field) or 0), r["id"]) < cursor
    ]
    page = after[:limit]
    following = (
        str(Cursor(int(page[-1].get(score_field) or 0), page[-1]["id"]))
        if len(after) > limit
        else None
    )
    return Page(page, following, len(rows))


class BacklogReads:
    """How long a connection's oldest waiting delivery has waited (a base of Ledger)."""

    redis: redis.Redis
    keys: LedgerKeys

    def backlog_since_ms(self, connection: str, objects: Sequence[str]) -> int | None:
        """When the connection's longest-waiting delivery was published or held (ms), or
        None when nothing waits: the oldest of its ready sets and of its held ones."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for obj in objects:
                pipe.zrange(self.keys.ready(connection, obj), 0, 0, withscores=True)
            pipe.zrange(self.keys.held(connection), 0, 0)
            *ready, held = pipe.execute()
            oldest = [int(entry[0][1]) for entry in ready if entry]
            if held:
                [[at]] = deliveries.read_fields(self.redis, self.keys, [text(held[0])], ["held_at"])
                if at is not None:
                    oldest.append(int(text(at)))
        return min(oldest) if oldest else None
