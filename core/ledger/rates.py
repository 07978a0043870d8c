"""A connection's rate limit as the ledger's scripts take it (`take_rate` in common.lua), one
shape for the deliveries' claims (claim_one.lua) and the polls' and backfills' listings
(permit.lua), so reads and writes share one limit."""

from __future__ import annotations

#: (requests, per_seconds) or (requests, per_seconds, burst)
RateSpec = tuple[int, float] | tuple[int, float, int | None]


def rate_params(spec: RateSpec) -> dict[str, float]:
    """A rate limit as the scripts' parameters: without a burst, a rolling window (never more
    than `requests` in any `per_seconds`); with one, GCRA (a steady rate of `requests` per
    `per_seconds` and up to `burst` more at once)."""
    requests, per_seconds = spec[0], spec[1]
    burst = spec[2] if len(spec) > 2 else None
    if not burst:
        return {"window_ms": per_seconds * 1000, "requests": requests}
    interval = per_seconds * 1000 / requests
    return {"interval_ms": interval, "burst_ms": interval * burst}
