"""Polling sources and backfills: list changed records from a connection, page by page, and
record each as an event in the ledger through the same intake as webhooks (core/intake.py,
Ledger.accept), so routing, mappings and deduplication apply unchanged.

The listing is keyset-paged on the records' own stamps: every page is asked from the newest
stamp recorded so far, inclusively (records sharing that stamp are listed again and the ledger
deduplicates them by their change ids), so a record changed while the poll pages cannot slip
between two pages. The vendor's page cursor is used only while a whole page sits within one
stamp (more records at one instant than a page holds). The cursor is saved after the page's
events are accepted, never before: a crash in between lists the page again (deduplicated), a
restart continues from the cursor, and no change is skipped or recorded twice.

Every listing request first takes a permit from the ledger (permit.lua): the connection's pause
switch, 429 cooldown, circuit and rate limit, shared with its writes. Its outcome is recorded
as a write's would be (read_outcome.lua): a refused credential pauses the connection (and the
connection_paused alert follows), timeouts and 5xx count toward the circuit, a 429 cools the
connection down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.changes import ChangePage, Stamp, change_id, stamp_of
from core.config.model import Config, SourceConfig
from core.config.polling import PollSpec
from core.errors import AuthError, DataError, HubError, NotPolling, RateLimited, TransientError
from core.intake import BadPayload, change_events
from core.ledger import Ledger
from core.ledger.polls import Cursor
from core.vocabulary import HUB_ITSELF, ClaimStatus

log = logging.getLogger("crmhub.polling")

#: the longest one poll run lists before handing back (the next run continues at once)
RUN_BUDGET_SECONDS = 20.0
#: the longest a poll waits in place for the rate limiter before handing back
MAX_RATE_WAIT_SECONDS = 2.0
#: a 429 without a Retry-After cools the connection down this long
DEFAULT_COOLDOWN_SECONDS = 10.0
#: a new source starts this far before now: vendors stamp to the second (Salesforce's
#: SystemModstamp shows .000), so a change saved in the second the source started is not lost
START_MARGIN_SECONDS = 1.0
#: a page's events are recorded this many at a time (one accept round trip each), so a
#: backfill can look at its backlog between them
ACCEPT_CHUNK = 100


class Lister(Protocol):
    """What a poll needs of a connector (connectors.base.Connector.list_changes)."""

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage: ...


@dataclass
class PollRun:
    """What one run did (a poll's, or a backfill's step)."""

    source: str
    pages: int = 0
    records: int = 0  # listed
    recorded: int = 0  # new events
    duplicates: int = 0  # already recorded (the cursor's stamp listed again, a repeat)
    caught_up: bool = False  # the listing is done, up to now (or `until`)
    stopped: str = ""  # why it stopped early: paused, cooldown, circuit_open, rate_limit...
    error: str = ""
    cursor: Cursor | None = None
    seconds: float = 0.0
    pages_done: list[int] = field(default_factory=list, repr=False)


def poll_source(
    ledger: Ledger,
    config: Config,
    name: str,
    lister: Lister,
    *,
    budget_seconds: float = RUN_BUDGET_SECONDS,
    backfill: bool = False,
    since: Stamp | None = None,
    until: Stamp | None = None,
    dry_run: bool = False,
    on_page: Callable[[PollRun], None] | None = None,
    throttle: Callable[[], None] | None = None,
    pace: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> PollRun:
    """List and record `name`'s changes from its cursor until caught up or `budget_seconds`
    pass. A polling source's cursor starts at now the first time; a backfill's (`backfill`)
    at `since` (default: the beginning), up to `until`, kept apart from the live cursor.
    `dry_run`: list and count, record nothing, move no cursor. `throttle`: called before each
    listing request, and may wait (a backfill's share of the rate limit). `pace`: called
    before each `ACCEPT_CHUNK` of a page's events is recorded, and may wait (a backfill's
    backlog), so a large page does not put all its writes in front of live ones at once.
    A live poll with `poll.lookback` lists from that long before its cursor (repeats dedupe)."""
    source = config.sources[name]
    poll = source.poll
    if poll is None:
        raise NotPolling(name)
    connection = config.connections[poll.connection]
    rate = (
        (
            connection.rate_limit.requests,
            connection.rate_limit.per_seconds,
            connection.rate_limit.burst,
        )
        if connection.rate_limit
        else None
    )
    started = clock()
    run = PollRun(name)
    stores = ledger.polls
    cursor = stores.cursor(name, backfill=backfill)
    if cursor is None:
        cursor = (
            Cursor(since or Stamp.at(0))
            if backfill
            else stores.start(name, Stamp.at(int((started - START_MARGIN_SECONDS) * 1000)))
        )
    run.cursor = cursor
    durable_ms = cursor.stamp.ms
    if poll.lookback and not backfill and cursor.after is None:
        # list the window before the cursor again (what a vendor's paging may have skipped);
        # the saved cursor does not move back: it is saved only once the listing passes it
        cursor = Cursor(Stamp.at(cursor.stamp.ms - int(poll.lookback * 1000)))
    who = f"{'backfill' if backfill else 'poll'}:{name}"
    at_cursor: set[str] = set()  # the changes at the cursor's stamp this run listed
    while clock() - started < budget_seconds:
        if throttle is not None:
            throttle()
        permit = stores.permit(
            poll.connection,
            who=who,
            now=clock(),
            probe_seconds=connection.timeout_seconds * 2 + 5,
            rate=rate,
        )
        if permit.status == ClaimStatus.WAIT:
            if permit.wait_ms / 1000 > MAX_RATE_WAIT_SECONDS:
                run.stopped = "rate_limit"
                break
            sleep(permit.wait_ms / 1000)
            continue
        if permit.status == ClaimStatus.HELD:
            run.stopped = "paused"
            break
        if permit.status != ClaimStatus.CLAIMED:
            run.stopped = permit.reason
            break
        page = _list(ledger, source, lister, cursor, until, clock(), run, backfill)
        if page is None:
            break
        run.pages += 1
        # a page asked from the newest stamp lists that stamp's records again: the ones this
        # run listed already are not counted (nor offered to the ledger) a second time
        fresh = []
        for item in page.records:
            stamp = stamp_of(item)
            key = change_id(item.id, stamp, item.record) if stamp else item.id
            if key not in at_cursor:
                fresh.append(item)
        page = ChangePage(fresh, page.next_cursor, page.records)
        run.records += len(fresh)
        if not dry_run:
            events = change_events(source, config.mappings_for(name), fresh, clock())
            for start in range(0, len(events), ACCEPT_CHUNK):
                if pace is not None:
                    pace()
                for taken in ledger.accept(events[start : start + ACCEPT_CHUNK], clock()):
                    if taken.duplicate:
                        run.duplicates += 1
                    else:
                        run.recorded += 1
        cursor, more = _next(cursor, page)
        at_cursor = {
            change_id(item.id, stamp, item.record)
            for item in page.listed
            if (stamp := stamp_of(item)) is not None and stamp.ms == cursor.stamp.ms
        } | (at_cursor if cursor.after is not None else set())
        if not dry_run and cursor.stamp.ms >= durable_ms:
            stores.advance(name, cursor, len(page.records), backfill=backfill)
        run.cursor = cursor
        if on_page is not None:
            on_page(run)
        if not more:
            run.caught_up = True
            break
    run.seconds = clock() - started
    return run


def _list(
    ledger: Ledger,
    source: SourceConfig,
    lister: Lister,
    cursor: Cursor,
    until: Stamp | None,
    now: float,
    run: PollRun,
    backfill: bool,
) -> ChangePage | None:
    """One listing request, its outcome recorded against the connection; None when it failed
    (`run.error` says why)."""
    stores = ledger.polls
    poll = source.poll
    assert poll is not None
    try:
        page = lister.list_changes(poll, cursor.stamp, cursor.after, until)
        for item in page.records:
            if stamp_of(item) is None:
                raise BadPayload(
                    f"{poll.object} {item.id} has no modification stamp at `{poll.cursor}` "
                    f"(the poll's cursor): {item.stamp!r}"
                )
    except AuthError as exc:
        run.error = f"{poll.connection!r} refused our credentials while listing: {exc}"
        pause = {"reason": "auth", "since": now, "by": HUB_ITSELF, "detail": run.error}
        if stores.read_outcome(poll.connection, now=now, ok=False, error=run.error, pause=pause):
            log.error(
                "crmhub paused connection %r: it refused our credentials while polling %r. "
                "Fix the credentials, then `crmhub resume %s`.",
                poll.connection,
                source.name,
                poll.connection,
                extra={"connection": poll.connection, "source": source.name},
            )
        return None
    except RateLimited as exc:
        run.error = str(exc)
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_COOLDOWN_SECONDS
        stores.read_outcome(
            poll.connection, now=now, ok=False, error=run.error, cooldown_until=now + wait
        )
        return None
    except TransientError as exc:
        run.error = str(exc)
        stores.read_outcome(poll.connection, now=now, ok=False, transient=True, error=run.error)
        return None
    except DataError as exc:
        if cursor.after is not None:  # the vendor's page cursor expired: list the stamp again
            stores.advance(source.name, Cursor(cursor.stamp), 0, backfill=backfill)
        run.error = f"listing {poll.object} from {poll.connection!r}: {exc}"
        stores.read_outcome(poll.connection, now=now, ok=False, error=run.error)
        return None
    except (HubError, BadPayload) as exc:
        run.error = f"listing {poll.object} from {poll.connection!r}: {exc}"
        return None
    stores.read_outcome(poll.connection, now=now, ok=True)
    return page


def _next(cursor: Cursor, page: ChangePage) -> tuple[Cursor, bool]:
    """The cursor after `page`, and whether to list again now. Keyset on the stamp: the next
    page is asked from the newest stamp listed; the vendor's cursor only while a page sits
    within the cursor's own stamp."""
    stamps = [s for s in (stamp_of(item) for item in page.listed) if s is not None]
    newest = max(stamps, key=lambda s: s.ms) if stamps else None
    if newest is not None and newest.ms > cursor.stamp.ms:
        return Cursor(newest), page.next_cursor is not None
    if page.next_cursor is not None:
        return Cursor(cursor.stamp, page.next_cursor), True
    return Cursor(cursor.stamp), False


def polling_sources(config: Config) -> list[str]:
    return sorted(name for name, source in config.sources.items() if source.poll is not None)
