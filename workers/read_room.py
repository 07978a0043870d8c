"""Room in a connection's rate limit for a read a delivery makes besides its write: a two-way
pair's read of the target's record (workers/two_way.py), a `fetch:` mapping's read of another
connection (workers/enrich.py). The write's place was taken by its claim; such a read takes a
place of its own from the same limiter the claims, polls and backfills share (permit.lua), so
reads and writes together stay within `connections.<c>.rate_limit`.
"""

from __future__ import annotations

import time

from core.errors import Deferred
from core.vocabulary import ClaimStatus
from workers.runtime import WorkerRuntime

#: the longest a worker waits in place for the rate limiter, for a claim (workers/delivery.py)
#: or a read; beyond that the delivery is rescheduled or deferred (no attempt used)
MAX_RATE_WAIT_SECONDS = 1.0


def take_read_room(
    rt: WorkerRuntime,
    connection: str,
    *,
    why: str,
    places: int = 1,
) -> None:
    """Return once the connection's rate limit has given `places` requests room (at once
    when it has no limit); raise Deferred when that is further off than MAX_RATE_WAIT_SECONDS
    (places taken by then are spent: the limit errs toward fewer requests, never more)."""
    rate = rt.rate_limits.get(connection)
    if rate is None:
        return
    waited = 0.0
    taken = 0
    while taken < places:
        permit = rt.ledger.polls.read_room(connection, who=why, now=time.time(), rate=rate)
        if permit.status != ClaimStatus.WAIT:
            taken += 1
            continue
        wait = permit.wait_ms / 1000
        if waited + wait > MAX_RATE_WAIT_SECONDS:
            raise Deferred(
                f"the rate limit of connection {connection!r} has no room now for {why}; "
                f"looking again in {wait:.1f} s (no attempt used)",
                recheck_seconds=wait,
            )
        time.sleep(wait)
        waited += wait
