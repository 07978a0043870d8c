"""The steps of a delivery around the mapping: `fetch:` (read the record behind a thin webhook
first) and `related:` (find or create the related records, then link the main one to them).

fetch: the deliveries of one attempt that read the same connection and object are fetched
together (`Connector.fetch_many`: one batch read at HubSpot). A fetch made after an event
occurred already holds that event's change, so it serves the record's later events of the
mapping's window too (`fetch.window_seconds`, kept in the ledger, shared by every worker): a
burst of propertyChange webhooks for one contact costs one read, and its deliveries still
write one at a time, in order (they share a record key). Its failures are the delivery's,
classified like a write's: a missing record is a dead letter `source_record_missing`; a
refused credential pauses the fetching connection (it alerts as any pause does), and while it
is paused the deliveries that read it wait (no attempt used, their record keys' order kept)
and look again every FETCH_RECHECK_SECONDS, so `crmhub resume <fetching connection>` lets them
go on; the connection they write to is never paused for another connection's credential.

related: per related object and key, the target's id is taken from the ledger's memo, else
found or created under a lock of that key (core/ledger/memo.py), so concurrent contacts of one
company create one Account, and a retry after a crash finds the Account it created.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from redis.exceptions import LockError

from core.errors import AuthError, DataError, Deferred, FetchPaused, HubError, TransientError
from core.ledger import translate_redis_errors
from core.mapping import MappedRecord
from core.mapping.record import fetch_id
from core.vocabulary import HUB_ITSELF, DeadCategory
from workers.read_room import take_read_room
from workers.runtime import WorkerRuntime

#: how often a delivery waiting on a paused fetching connection looks again
FETCH_RECHECK_SECONDS = 15.0


def event_bodies(
    rt: WorkerRuntime, work: Sequence[tuple[dict[str, str], dict[str, str]]]
) -> list[Any]:
    """Each (delivery, event)'s body to map, with `fetched` added for a `fetch:` mapping; a
    HubError in place of a body whose fetch failed."""
    out: list[Any] = [None] * len(work)
    groups: dict[tuple[str, str, tuple[str, ...], float], list[tuple[int, str, Any]]] = {}
    memo = rt.ledger.memo
    for index, (raw, event) in enumerate(work):
        try:
            body = json.loads(event.get("body") or "null")
        except ValueError:
            out[index] = DataError(
                "the recorded event's body is not JSON; discard it",
                category=DeadCategory.MAPPING,
            )
            continue
        mapping = rt.config.mappings.get(raw.get("mapping", ""))
        fetch = mapping.fetch if mapping is not None else None
        if mapping is None or fetch is None:
            out[index] = body
            continue
        record_id = fetch_id(mapping, body)
        if record_id is None:
            out[index] = DataError(
                f"mapping {mapping.name!r}: the event has no id to fetch "
                f"({' or '.join(fetch.id)} is empty)",
                category=DeadCategory.MAPPING,
                problems=[{"field": "fetch.id", "value": None, "problem": "missing"}],
            )
            continue
        occurred = int(float(raw.get("occurred_ms") or event.get("received_at") or 0))
        cached = memo.fetched(fetch.connection, fetch.object, record_id)
        if cached is not None and cached[0] >= occurred:
            out[index] = {**body, "fetched": cached[1]} if isinstance(body, dict) else body
            continue
        key = (fetch.connection, fetch.object, fetch.properties, fetch.window_seconds)
        groups.setdefault(key, []).append((index, record_id, body))
    for (connection, obj, properties, window), members in groups.items():
        started = time.time()
        ids = [record_id for _, record_id, _ in members]
        found: dict[str, Any]
        if rt.ledger.pause_info(connection) is not None:
            found = dict.fromkeys(ids, _paused(connection, "is paused"))
        else:
            try:
                connector = rt.connector(connection)
                take_read_room(
                    rt,
                    connection,
                    why=f"fetching {obj} from it",
                    places=connector.fetch_requests(len(set(ids))),
                )
                found = connector.fetch_many(obj, ids, properties)
            except AuthError as exc:
                rt.ledger.pause(
                    connection, reason="auth", by=HUB_ITSELF, now=time.time(), detail=str(exc)
                )
                found = dict.fromkeys(ids, _paused(connection, f"refused our credentials: {exc}"))
            except HubError as exc:
                found = dict.fromkeys(ids, exc)
            else:
                rt.ledger.read_succeeded(connection, time.time())
        for index, record_id, body in members:
            record = found[record_id]
            if isinstance(record, Deferred):  # says where already
                out[index] = record
                continue
            if isinstance(record, HubError):
                out[index] = _named(record, f"fetching {obj} {record_id} from {connection!r}")
                continue
            memo.remember_fetch(connection, obj, record_id, record, started, window)
            out[index] = {**body, "fetched": record} if isinstance(body, dict) else body
    return out


def _paused(connection: str, why: str) -> FetchPaused:
    return FetchPaused(
        f"the fetching connection {connection!r} {why}; waiting for `crmhub resume {connection}`",
        connection=connection,
        recheck_seconds=FETCH_RECHECK_SECONDS,
    )


def _named(error: HubError, what: str) -> HubError:
    """A copy of the error saying where it happened (so a pause names the right credential);
    the original may be shared by several deliveries of one request."""
    named = copy.copy(error)
    named.args = (f"{what}: {error}",)
    return named


def link_related(
    rt: WorkerRuntime, records: Sequence[MappedRecord]
) -> list[MappedRecord | HubError]:
    """Each record linked to its related records (found or created first), or the error that
    stopped it."""
    wanted: dict[tuple[str, str, str | None], dict[str, MappedRecord]] = {}
    for record in records:
        for _, related in record.related:
            group = (related.connection, related.object, related.match_field)
            wanted.setdefault(group, {}).setdefault(str(related.match_value), related)
    ids: dict[tuple[str, str, str], str | HubError] = {}
    for (connection, obj, _), by_key in wanted.items():
        for key, outcome in _resolve(rt, connection, obj, by_key).items():
            ids[(connection, obj, key)] = outcome
    out: list[MappedRecord | HubError] = []
    for record in records:
        linked: MappedRecord | HubError = record
        for link, related in record.related:
            found = ids[(related.connection, related.object, str(related.match_value))]
            if isinstance(found, HubError):
                linked = _named(found, f"the related {related.object} of {link}")
                break
            assert isinstance(linked, MappedRecord)
            linked = linked.linked(link, found)
        out.append(linked)
    return out


def forget_refused_links(rt: WorkerRuntime, record: MappedRecord, error: BaseException) -> None:
    """The target refused the write for a link field (the related record was deleted or
    merged since its id was remembered): forget that id, so a retry or replay finds or
    creates the related record again."""
    if not isinstance(error, DataError):
        return
    named = {p.get("field") for p in error.problems}
    for link, related in record.related:
        if link in named:
            rt.ledger.memo.forget_related(
                related.connection, related.object, str(related.match_value)
            )


def _resolve(
    rt: WorkerRuntime, connection: str, obj: str, by_key: dict[str, MappedRecord]
) -> dict[str, str | HubError]:
    memo = rt.ledger.memo
    known: dict[str, str | HubError] = dict(memo.related_ids(connection, obj, list(by_key)))
    missing = sorted(k for k in by_key if k not in known)
    if not missing:
        return known
    try:
        with _locked(rt, connection, obj, missing):
            # another worker may have found or created some while we waited
            known.update(memo.related_ids(connection, obj, missing))
            still = [k for k in missing if k not in known]
            if still:
                results = rt.connector(connection).find_or_create([by_key[k] for k in still])
                made = {k: r for k, r in zip(still, results, strict=True) if isinstance(r, str)}
                memo.remember_related(connection, obj, made)
                known.update(zip(still, results, strict=True))
    except LockError as exc:
        error = TransientError(f"waiting for another worker's {obj} find-or-create: {exc}")
        known.update(dict.fromkeys(missing, error))
    except HubError as exc:
        known.update({k: exc for k in missing if k not in known})
    return known


@contextlib.contextmanager
def _locked(rt: WorkerRuntime, connection: str, obj: str, keys: list[str]) -> Iterator[None]:
    """Every key's lock, taken in sorted order (two workers never wait on each other)."""
    held = []
    try:
        with translate_redis_errors():
            for key in keys:
                lock = rt.ledger.memo.related_lock(connection, obj, key)
                if not lock.acquire():
                    raise LockError(f"the lock of {key!r} was held too long")
                held.append(lock)
        yield
    finally:
        with translate_redis_errors():
            for lock in reversed(held):
                with contextlib.suppress(LockError):
                    lock.release()
