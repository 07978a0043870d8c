"""Identifiers that sort by creation time (readable in logs, cheap to make)."""

from __future__ import annotations

import random
import time

# Ids must be unique, not unguessable (they are never credentials): the random module's
# generator, seeded from the OS and reseeded in every forked child (gunicorn and Celery
# workers), is enough and costs no system call per id.


def new_id(prefix: str, now: float | None = None) -> str:
    """`evt_0190a1b2c3d4e5f6a7b8c9d0`: 12 hex digits of milliseconds, 12 random."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{ms:012x}{random.getrandbits(48):012x}"


def new_event_id(now: float | None = None) -> str:
    return new_id("evt", now)


def new_delivery_id(now: float | None = None) -> str:
    return new_id("dlv", now)


def id_ms(ident: str) -> int:
    """When one of our ids (`evt_`, `dlv_`...: new_id) was made, in ms; -1 for another."""
    try:
        return int(ident[4:16], 16)
    except ValueError:
        return -1
