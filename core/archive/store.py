"""The archive: events done for good, with their deliveries, after they leave Redis.

Written by the archiver (core/archive/mover.py), one batch per transaction, idempotently: a
batch written twice (the archiver died before Redis let go of it) leaves the same rows.
Searched by operators (core/archive/lookup.py): by id, sender id, source, type, state, time
and an email in the body (indexed at archive time, core/archive/emails.py). Kept for
CRMHUB_ARCHIVE_RETENTION_DAYS, then deleted in batches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.archive.database import Database, Transaction
from core.archive.emails import emails_in, normalized_email
from core.ledger.cold import DoneDelivery, DoneEvent
from core.ledger.views import delivery_view, event_view, iso_from_ms
from core.vocabulary import OperatorAction


@dataclass(frozen=True)
class EventQuery:
    """Which events an operator means (`crmhub events list`); every filter optional."""

    id: str | None = None
    external_id: str | None = None  # the sender's event id
    source: str | None = None
    type: str | None = None
    state: str | None = None  # the event's (recorded, unrouted, echo) or a delivery's
    since: float | None = None  # received at or after (epoch s)
    until: float | None = None  # received at or before (epoch s)
    email: str | None = None  # an address in the body


#: the columns of an event's row in a list (not its body or headers)
SUMMARY = "id, source, type, external_id, received_at, state"
_EVENT_COLUMNS = (
    "id",
    "source",
    "type",
    "external_id",
    "received_at",
    "occurred_at",
    "state",
    "done_at",
    "archived_at",
    "headers",
    "body",
)


def _discard_reason(delivery: DoneDelivery) -> str | None:
    """The reason an operator gave when discarding it (its last discard action)."""
    for action in reversed(delivery.actions):
        if action.get("action") == OperatorAction.DISCARD:
            return str(action.get("reason") or "")
    return None


def _in(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """`IN (:name0, :name1, ...)` and its parameters."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{p}" for p in params) + ")", params


class Archive:
    def __init__(self, db: Database) -> None:
        self.db = db

    # the archiver ---------------------------------------------------------------------
    def write(self, events: Sequence[DoneEvent], now: float) -> int:
        """Write a batch (insert, or replace the same event's rows); returns how many were
        new. One transaction: all of the batch or none of it."""
        if not events:
            return 0
        now_ms = int(now * 1000)
        ids = [ev.id for ev in events]
        with self.db.transaction() as tx:
            listed, params = _in("id", ids)
            known = tx.execute(f"SELECT COUNT(*) FROM archived_events WHERE id IN {listed}", params)
            new = len(ids) - int(known[0][0])
            tx.executemany(
                f"INSERT INTO archived_events ({', '.join(_EVENT_COLUMNS)}) VALUES "
                f"({', '.join(':' + c for c in _EVENT_COLUMNS)}) ON CONFLICT (id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in _EVENT_COLUMNS[1:]),
                [self._event_row(ev, now_ms) for ev in events],
            )
            tx.executemany(
                "INSERT INTO archived_deliveries (id, event_id, mapping, connection, state, "
                "updated_at, discard_reason, history) VALUES (:id, :event_id, :mapping, "
                ":connection, :state, :updated_at, :discard_reason, :history) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at, discard_reason = excluded.discard_reason, "
                "history = excluded.history",
                [self._delivery_row(ev, d) for ev in events for d in ev.deliveries],
            )
            tx.execute(f"DELETE FROM archived_event_emails WHERE event_id IN {listed}", params)
            tx.executemany(
                "INSERT INTO archived_event_emails (email, event_id) VALUES (:email, :event_id)",
                [
                    {"email": email, "event_id": ev.id}
                    for ev in events
                    for email in emails_in(ev.fields.get("body", ""))
                ],
            )
            self._count(tx, new)
        return new

    @staticmethod
    def _event_row(ev: DoneEvent, now_ms: int) -> dict[str, Any]:
        f = ev.fields
        return {
            "id": ev.id,
            "source": f.get("source", ""),
            "type": f.get("type") or None,
            "external_id": f.get("external_id", ""),
            "received_at": int(f.get("received_at") or 0),
            "occurred_at": f.get("occurred_at") or None,
            "state": f.get("state", ""),
            "done_at": ev.done_ms,
            "archived_at": now_ms,
            "headers": f.get("headers") or "{}",
            "body": f.get("body", ""),
        }

    @staticmethod
    def _delivery_row(ev: DoneEvent, d: DoneDelivery) -> dict[str, Any]:
        f = d.fields
        return {
            "id": f["id"],
            "event_id": ev.id,
            "mapping": f.get("mapping", ""),
            "connection": f.get("connection", ""),
            "state": f.get("state", ""),
            "updated_at": int(f.get("updated_at") or 0),
            "discard_reason": _discard_reason(d),
            "history": json.dumps(
                {"fields": f, "attempts": d.attempts, "actions": d.actions},
                separators=(",", ":"),
            ),
        }

    @staticmethod
    def _count(tx: Transaction, change: int) -> None:
        if change:
            tx.execute(
                "UPDATE archive_counts SET value = value + :n WHERE name = 'events'", {"n": change}
            )

    # operators ------------------------------------------------------------------------
    def event(self, event_id: str) -> dict[str, Any] | None:
        """An archived event in the shape of `crmhub events show` (core.ledger.views), its
        deliveries with their attempt history and actions."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {', '.join(_EVENT_COLUMNS)} FROM archived_events WHERE id = :id",
                {"id": event_id},
            )
            if not rows:
                return None
            deliveries = tx.execute(
                "SELECT history FROM archived_deliveries WHERE event_id = :id", {"id": event_id}
            )
        row = dict(zip(_EVENT_COLUMNS, rows[0], strict=True))
        raw = {k: "" if v is None else str(v) for k, v in row.items()}
        views = []
        for (history,) in deliveries:
            kept = json.loads(history)
            view = delivery_view(kept["fields"])
            view["attempt_history"] = kept["attempts"]
            view["actions"] = kept["actions"]
            views.append(view)
        views.sort(key=lambda d: d["created_at"] or "")
        return event_view(raw, views) | {
            "done_at": iso_from_ms(row["done_at"]),
            "archived_at": iso_from_ms(row["archived_at"]),
        }

    def search(self, query: EventQuery, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Archived events matching `query`, newest first (by received_at, then id): the
        list rows (no body), with `deliveries` their count."""
        where, params = self._where(query)
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {SUMMARY}, (SELECT COUNT(*) FROM archived_deliveries d "
                f"WHERE d.event_id = e.id) FROM archived_events e {where} "
                "ORDER BY received_at DESC, id DESC LIMIT :limit OFFSET :offset",
                params | {"limit": limit, "offset": offset},
            )
        return [
            {
                "id": r[0],
                "source": r[1],
                "type": r[2],
                "external_id": r[3],
                "received_at": iso_from_ms(r[4]),
                "received_ms": int(r[4]),
                "state": r[5],
                "deliveries": int(r[6]),
            }
            for r in rows
        ]

    @staticmethod
    def _where(query: EventQuery) -> tuple[str, dict[str, Any]]:
        clauses = []
        params: dict[str, Any] = {}
        for column in ("id", "external_id", "source", "type"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"e.{column} = :{column}")
                params[column] = value
        if query.state is not None:
            clauses.append(
                "(e.state = :state OR e.id IN "
                "(SELECT event_id FROM archived_deliveries WHERE state = :state))"
            )
            params["state"] = query.state
        if query.since is not None:
            clauses.append("e.received_at >= :since")
            params["since"] = int(query.since * 1000)
        if query.until is not None:
            clauses.append("e.received_at <= :until")
            params["until"] = int(query.until * 1000)
        if query.email is not None:
            clauses.append(
                "e.id IN (SELECT event_id FROM archived_event_emails WHERE email = :email)"
            )
            params["email"] = normalized_email(query.email)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def event_ids_with_email(self, email: str) -> list[str]:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT event_id FROM archived_event_emails WHERE email = :email",
                {"email": normalized_email(email)},
            )
        return [r[0] for r in rows]

    def delete(self, event_ids: Sequence[str]) -> int:
        """Erase events and everything kept with them; returns how many were here."""
        deleted = 0
        for start in range(0, len(event_ids), 500):
            listed, params = _in("id", event_ids[start : start + 500])
            with self.db.transaction() as tx:
                deleted += self._delete(tx, f"IN {listed}", params)
        return deleted

    def _delete(self, tx: Transaction, which: str, params: dict[str, Any]) -> int:
        """Delete the events whose id is `which` (an SQL condition on an id)."""
        tx.execute(f"DELETE FROM archived_event_emails WHERE event_id {which}", params)
        tx.execute(f"DELETE FROM archived_deliveries WHERE event_id {which}", params)
        tx.execute(f"DELETE FROM archived_events WHERE id {which}", params)
        deleted = tx.rowcount
        self._count(tx, -deleted)
        return deleted

    def expire(self, received_before: float, batch: int) -> int:
        """Delete up to `batch` events received before `received_before` (epoch s), oldest
        first (retention); returns how many."""
        with self.db.transaction() as tx:
            ids = [
                r[0]
                for r in tx.execute(
                    "SELECT id FROM archived_events WHERE received_at < :before "
                    "ORDER BY received_at LIMIT :batch",
                    {"before": int(received_before * 1000), "batch": batch},
                )
            ]
            if not ids:
                return 0
            listed, params = _in("id", ids)
            return self._delete(tx, f"IN {listed}", params)

    # figures --------------------------------------------------------------------------
    def count(self) -> int:
        """Events in the archive (kept as a counter: no table scan per scrape)."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute("SELECT value FROM archive_counts WHERE name = 'events'")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        self.db.close()
