"""Dead letters for the operator API and dashboard: filtered pages, and replay or discard of
chosen ids or of everything a filter matches, with a dry run that counts first.

A bulk action is an operation in the ledger (core/ledger/bulk.py): the ids it takes, chosen
when it was asked for, each with the dead_at seen then (so one that is replayed and dies again
meanwhile is not replayed twice), and its progress. Up to BACKGROUND_OVER it runs at once;
past that the caller runs it in the background (`run_operation`), and any process can take
it over when its runner stops (`resume_unfinished`). The same Idempotency-Key returns the same
operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from core import operations
from core.config import Config
from core.ids import new_id
from core.ledger import Ledger
from core.ledger.bulk import DONE, operation_view
from core.ledger.dead_pages import DEAD_FIELDS, DeadQuery
from core.ledger.pages import Cursor
from core.vocabulary import OperatorAction, State

BACKGROUND_OVER = 500
CHUNK = 500
SAMPLE = 10
LEASE_SECONDS = 30.0


row = operations.dead_letter_row


def page(ledger: Ledger, query: DeadQuery, *, limit: int, cursor: str | None) -> dict[str, Any]:
    found = ledger.dead_page(query, limit=limit, cursor=Cursor.parse(cursor))
    return {
        "dead_letters": [row(r) for r in found.rows],
        "total": found.total,
        "next_cursor": found.next_cursor,
    }


def chosen(
    ledger: Ledger, ids: Sequence[str] | None, query: DeadQuery | None
) -> list[dict[str, str]]:
    """The dead letters an action means: the ids given (those that are not dead are left in,
    for the action to report), or everything `query` matches."""
    if ids is not None:
        unique = list(dict.fromkeys(ids))
        found = ledger.delivery_fields(unique, DEAD_FIELDS)
        return [raw or {"id": i} for i, raw in zip(unique, found, strict=True)]
    return ledger.dead_matching(query or DeadQuery())


def dry_run(action: OperatorAction, rows: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    dead = [r for r in rows if r.get("state") == State.DEAD]
    return {f"would_{action}": len(dead), "sample": [row(r) for r in dead[:SAMPLE]]}


def start(
    ledger: Ledger,
    config: Config,
    action: OperatorAction,
    rows: Sequence[Mapping[str, str]],
    *,
    by: str,
    via: str,
    reason: str = "",
    query: DeadQuery | None = None,
    idempotency_key: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Record the operation; run it here when small. The answer: the operation's view, with
    `background: True` when the caller must run it (`run_operation`)."""
    now = time.time() if now is None else now
    op_id, created = ledger.bulk.create(
        new_id("op", now),
        items=[(r["id"], r.get("dead_at", "")) for r in rows],
        fields={
            "action": str(action),
            "by": by,
            "via": via,
            "reason": reason,
            "filter": {k: v for k, v in asdict(query).items() if v is not None} if query else None,
        },
        now=now,
        idempotency_key=idempotency_key,
    )
    view = operation_view(ledger.bulk.get(op_id))
    if not created:
        return view | {"background": view["total"] > BACKGROUND_OVER, "repeated": True}
    if len(rows) > BACKGROUND_OVER:
        return view | {"background": True}
    results = run_operation(ledger, config, op_id, owner=f"inline-{op_id}")
    return operation_view(ledger.bulk.get(op_id)) | {"background": False, "results": results}


def run_operation(
    ledger: Ledger,
    config: Config,
    op_id: str,
    *,
    owner: str,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """Work through an operation's ids a chunk at a time from where it stands, holding a
    lease (another runner holding one: nothing is done). Returns what each id came to."""
    results: dict[str, str] = {}
    if not ledger.bulk.take(op_id, owner, clock(), LEASE_SECONDS):
        return results
    op = ledger.bulk.get(op_id)
    action = OperatorAction(op["action"])
    while True:
        done = int(ledger.bulk.get(op_id).get("done", 0))
        items = ledger.bulk.chunk(op_id, done, CHUNK)
        if not items:
            ledger.bulk.finish(op_id, clock())
            return results
        ids = [i for i, _ in items]
        seen = dict(items)
        common = {
            "by": op.get("by", ""),
            "now": clock(),
            "via": op.get("via", "api"),
            "dead_at": seen,
            "operation": op_id,
        }
        if action == OperatorAction.REPLAY:
            results |= operations.replay(ledger, config, ids, **common)  # type: ignore[arg-type]
        else:
            results |= operations.discard(
                ledger,
                ids,
                reason=op.get("reason", ""),
                **common,  # type: ignore[arg-type]
            )
        if not ledger.bulk.take(op_id, owner, clock(), LEASE_SECONDS):
            return results


def resume_unfinished(
    ledger: Ledger, config: Config, *, owner: str, clock: Callable[[], float] = time.time
) -> list[str]:
    """Take over every operation whose runner stopped (a web process restarted) and finish
    it; returns their ids."""
    taken = []
    for op_id in ledger.bulk.unfinished(clock()):
        run_operation(ledger, config, op_id, owner=owner, clock=clock)
        if ledger.bulk.get(op_id).get("state") == DONE:
            taken.append(op_id)
    return taken


def operation(ledger: Ledger, op_id: str) -> dict[str, Any] | None:
    raw = ledger.bulk.get(op_id)
    return operation_view(raw) if raw else None
