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
from core.ledger.keys import LedgerKeys
from core.ledger.search import normalise
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text

CHUNK = 200
#: index entries one request looks at, at most: a rare filter over a large index answers a
#: short page (even an empty one) with a next_cursor rather than reading everything
SCAN_BUDGET = 5000
#: events a `q` search takes from the term index, at most
SEARCH_LIMIT = 500
#: a multi-filter total is counted up to this many index entries, else left unknown (None)
COUNT_BUDGET = 20000

DEAD_FIELDS = (
    "id",
    "event_id",
    "connection",
    "mapping",
    "state",
    "dead_category",
    "dead_error",
    "dead_at",
    "attempts",
)
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
class DeadQuery:
    connection: str | None = None
    mapping: str | None = None
    category: str | None = None
    since_ms: int | None = None
    q: str | None = None

    def keeps(self, raw: dict[str, str]) -> bool:
        return (
            raw.get("state") == "dead"
            and (not self.connection or raw.get("connection") == self.connection)
            and (not self.mapping or raw.get("mapping") == self.mapping)
            and (not self.category or raw.get("dead_category") == self.category)
            and (not self.since_ms or int(raw.get("dead_at") or 0) >= self.since_ms)
        )


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
        key = self.keys.delivery if kind == "dlv" else self.keys.event
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(key(i), list(fields))
            replies = pipe.execute()
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

    # dead letters ---------------------------------------------------------------------
    def dead_page(self, query: DeadQuery, *, limit: int, cursor: Cursor | None) -> Page:
        if query.q:
            return self._dead_search(query, limit, cursor)
        key, exact = self._dead_index(query)
        rows, following = self._walk(
            key,
            low=query.since_ms,
            high=None,
            cursor=cursor,
            limit=limit,
            rows_of=lambda ids: self._fields("dlv", ids, DEAD_FIELDS),
            keep=query.keeps,
        )
        return Page(rows, following, self._dead_total(query, key, exact))

    def dead_matching(self, query: DeadQuery) -> list[dict[str, str]]:
        """Every dead letter `query` matches, newest first (bulk actions: no page limit)."""
        rows: list[dict[str, str]] = []
        cursor: Cursor | None = None
        while True:
            page = self.dead_page(query, limit=1000, cursor=cursor)
            rows += page.rows
            if page.next_cursor is None:
                return rows
            cursor = Cursor.parse(page.next_cursor)

    def ensure_dead_indexes(self, categories: Sequence[str]) -> int:
        """Dead letters from before the per-connection, mapping and category indexes existed
        are added to them (the web process does this at start); a no-op when the category
        indexes already add up to the dead-letter index. Returns how many were indexed."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(self.keys.dead_index())
            for category in categories:
                pipe.zcard(self.keys.dead_by_category(category))
            total, *parts = pipe.execute()
            if total == sum(parts):
                return 0
            done = 0
            for start in range(0, int(total), 1000):
                entries = cast(
                    list[tuple[bytes, float]],
                    self.redis.zrange(self.keys.dead_index(), start, start + 999, withscores=True),
                )
                ids = [text(member) for member, _ in entries]
                rows = self._fields("dlv", ids, ("connection", "mapping", "dead_category"))
                pipe = self.redis.pipeline(transaction=False)
                for (member, score), row in zip(entries, rows, strict=True):
                    at = {text(member): score}
                    pipe.zadd(self.keys.dead_by_connection(row.get("connection", "")), at)
                    pipe.zadd(self.keys.dead_by_mapping(row.get("mapping", "")), at)
                    pipe.zadd(self.keys.dead_by_category(row.get("dead_category", "")), at)
                pipe.execute()
                done += len(entries)
        return done

    def _dead_index(self, query: DeadQuery) -> tuple[str, bool]:
        """The smallest index that holds every match, and whether it holds only matches
        (then its count in the time range is the total)."""
        given = [
            k
            for k in (
                query.connection and self.keys.dead_by_connection(query.connection),
                query.mapping and self.keys.dead_by_mapping(query.mapping),
                query.category and self.keys.dead_by_category(query.category),
            )
            if k
        ]
        if not given:
            return self.keys.dead_index(), True
        if len(given) == 1:
            return given[0], True
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for k in given:
                pipe.zcard(k)
            sizes = pipe.execute()
        return min(zip(sizes, given, strict=True))[1], False

    def _dead_total(self, query: DeadQuery, key: str, exact: bool) -> int | None:
        low = query.since_ms if query.since_ms is not None else "-inf"
        with translate_redis_errors():
            if exact:
                return int(self.redis.zcount(key, low, "+inf"))
            if int(self.redis.zcount(key, low, "+inf")) > COUNT_BUDGET:
                return None
            ids = [text(i) for i in self.redis.zrevrangebyscore(key, "+inf", low)]
        return sum(1 for raw in self._fields("dlv", ids, DEAD_FIELDS) if query.keeps(raw))

    def _dead_search(self, query: DeadQuery, limit: int, cursor: Cursor | None) -> Page:
        """`q`: a delivery id, an event id, a sender's event id or an email address in the
        event's body; the dead letters among those events' deliveries."""
        term = normalise(query.q or "")
        ids: list[str] = []
        with translate_redis_errors():
            exact = term.startswith("dlv_") and self.redis.exists(self.keys.delivery(term))
        if exact:
            ids = [term]
        else:
            events = self._search_events(term, None, None)
            with translate_redis_errors():
                pipe = self.redis.pipeline(transaction=False)
                for event_id in events:
                    pipe.hget(self.keys.event(event_id), "deliveries")
                lists = pipe.execute()
            ids = [i for value in lists if value for i in text(value).split(",") if i]
        rows = [r for r in self._fields("dlv", ids, DEAD_FIELDS) if r and query.keeps(r)]
        rows.sort(key=lambda r: (int(r.get("dead_at") or 0), r["id"]), reverse=True)
        return _page_of_sorted(rows, "dead_at", limit, cursor)

    def _search_events(self, term: str, low: int | None, high: int | None) -> list[str]:
        """Events `term` finds, newest first: the event of that id, or those of the term
        index (a sender's event id, an email address), at most SEARCH_LIMIT."""
        with translate_redis_errors():
            if term.startswith("evt_") and self.redis.exists(self.keys.event(term)):
                return [term]
            found = self.redis.zrevrangebyscore(
                self.keys.search(term),
                high if high is not None else "+inf",
                low if low is not None else "-inf",
                start=0,
                num=SEARCH_LIMIT,
            )
        return [text(i) for i in found]

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
            if state in delivery_states:  # then the deliveries' states decide
                for row in rows:
                    deliveries = [i for i in row.get("deliveries", "").split(",") if i]
                    states = {r.get("state") for r in self._fields("dlv", deliveries, ("state",))}
                    if state not in states:
                        row.clear()
            return rows

        if q:
            ids = self._search_events(normalise(q), since_ms, until_ms)
            rows = [r for r in rows_of(ids) if r and keep(r)]
            return _page_of_sorted(rows, "received_at", limit, cursor)
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


def _page_of_sorted(
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
                at = self.redis.hget(self.keys.delivery(text(held[0])), "held_at")
                if at is not None:
                    oldest.append(int(text(at)))
        return min(oldest) if oldest else None
