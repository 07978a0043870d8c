"""Identifiers that sort by creation time (readable in logs, cheap to make)."""

from __future__ import annotations

import os
import time


def new_id(prefix: str, now: float | None = None) -> str:
    """`evt_0190a1b2c3d4e5f6a7b8c9d0`: 12 hex digits of milliseconds, 12 random."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{ms:012x}{os.urandom(6).hex()}"


def new_event_id(now: float | None = None) -> str:
    return new_id("evt", now)


def new_delivery_id(now: float | None = None) -> str:
    return new_id("dlv", now)
