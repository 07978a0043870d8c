"""Erasing a person's events from both stores (`crmhub events purge --email X`): payloads may
hold personal data, and a person may ask for it to be erased.

The events are found by the email addresses in their bodies (core/archive/emails.py): in Redis
by reading the hot events' bodies (bounded by the hot retention), in the archive by its email
index. It runs holding the archiver's lock, so no event is moved while it is being erased (an
event being archived is in both stores for a moment). An event with a delivery still on its
way (pending, in flight, scheduled, held) is not erased: that is a write the hub promised;
it is reported, to be erased once delivered. The erasure is recorded in the operator action log with
a hash of the address, not the address.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.archive.lookup import CHUNK, hot_events
from core.archive.store import Archive, EventQuery
from core.errors import CrmhubError
from core.ledger import Ledger
from core.vocabulary import OperatorAction, Reason

#: how long an erasure waits for a running archive pass to let go of the lock
WAIT_SECONDS = 60.0
#: the archiver's lock, held for the whole erasure (the hot side is read whole): an erasure
#: that dies holds up the archiver at most this long
LOCK_SECONDS = 120.0


class ArchiverBusy(CrmhubError):
    """The archiver kept its lock for longer than an erasure waits: try again."""


@dataclass
class Erasure:
    email_sha256: str
    hot: list[str] = field(default_factory=list)  # erased from Redis
    archived: list[str] = field(default_factory=list)  # erased from the archive
    kept: dict[str, str] = field(default_factory=dict)  # id -> the state still on its way

    def as_dict(self) -> dict[str, Any]:
        return {
            "email_sha256": self.email_sha256,
            "erased_hot": self.hot,
            "erased_archived": self.archived,
            "kept": self.kept,
        }


def purge_email(
    ledger: Ledger,
    archive: Archive,
    email: str,
    *,
    by: str,
    via: str = "cli",
    now: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Erasure:
    """Erase every event whose body holds `email`, from Redis and from the archive."""
    now = time.time() if now is None else now
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    erasure = Erasure(digest)
    waited = 0.0
    while True:
        with ledger.archive_lock(LOCK_SECONDS) as lock:
            if lock is not None:
                hot = [row["id"] for row in hot_events(ledger, EventQuery(email=email), None)]
                for start in range(0, len(hot), CHUNK):
                    for event_id, result in ledger.purge(hot[start : start + CHUNK], now).items():
                        if result == "ok":
                            erasure.hot.append(event_id)
                        elif result != Reason.MISSING:
                            erasure.kept[event_id] = result
                cold = archive.event_ids_with_email(email)
                archive.delete(cold)
                erasure.archived = cold
                break
        if waited >= WAIT_SECONDS:
            raise ArchiverBusy(
                f"the archiver held its lock for {WAIT_SECONDS:.0f} s; nothing was erased. "
                "Run the purge again."
            )
        sleep(0.2)
        waited += 0.2
    ledger.actions.record(
        {
            "action": OperatorAction.PURGE,
            "by": by,
            "via": via,
            "ids": erasure.hot + erasure.archived,
            "count": len(erasure.hot) + len(erasure.archived),
        }
        | erasure.as_dict(),
        now,
    )
    return erasure
