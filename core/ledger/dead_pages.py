"""Pages of dead letters (a base of core.ledger.Ledger): by connection, mapping and category
(each an index of its own, by dead_at, kept by operator.lua), by time, by a search term; their
totals; every match of a filter for a bulk action. See core/ledger/pages.py for the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from core.ledger import deliveries, event_fields
from core.ledger.pages import Cursor, LedgerPages, Page, page_of_sorted
from core.ledger.search import normalise
from core.ledger.translate import translate_redis_errors
from core.ledger.views import text

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


class DeadLetterPages(LedgerPages):
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
            exact = term.startswith("dlv_") and deliveries.exists(self.redis, self.keys, term)
        if exact:
            ids = [term]
        else:
            events = self._search_events(term, None, None, query.q or "")
            lists = event_fields.read_delivery_ids(self.redis, self.keys, events)
            ids = [i for listed in lists for i in listed]
        rows = [r for r in self._fields("dlv", ids, DEAD_FIELDS) if r and query.keeps(r)]
        rows.sort(key=lambda r: (int(r.get("dead_at") or 0), r["id"]), reverse=True)
        return page_of_sorted(rows, "dead_at", limit, cursor)
