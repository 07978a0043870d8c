"""Injected faults, shared by every fake: which requests a fault hits (methods, objects), for
how long (count, seconds), how often (ratio, drawn from a seeded generator, so a run can be
repeated), and the checking of a fault spec sent to ``POST /_control/faults``."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.fakes.app import BadRequest, Json


@dataclass
class FaultBase:
    """What every injected fault has: which requests it hits, for how long, how often."""

    # The keys of describe(), in the order the fake answers them.
    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = ()

    id: int
    mode: str
    count: int | None = None
    seconds: float | None = None
    ratio: float | None = None
    seed: int | str | None = None
    status: int = 500
    latency_ms: float = 200
    methods: frozenset[str] | None = None
    objects: frozenset[str] | None = None
    message: str | None = None
    created: float = field(default_factory=time.monotonic)
    hits: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else max(self.count - self.hits, 0)

    def active(self, now: float) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        return self.seconds is None or now < self.created + self.seconds

    def targets(self, method: str, obj: str | None) -> bool:
        """Whether the method and object filters let this request through."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.objects is None or obj in self.objects

    def fires(self) -> bool:
        """Whether the ratio (drawn from the fault's seeded generator) lets it fire now."""
        return self.ratio is None or self.rng.random() < self.ratio

    def describe_extra(self) -> Json:
        """Values of describe() keys only some fakes have."""
        return {}

    def describe(self, now: float) -> Json:
        expires_in = None
        if self.seconds is not None:
            expires_in = round(max(self.created + self.seconds - now, 0.0), 3)
        values: Json = {
            "id": self.id,
            "mode": self.mode,
            "count": self.count,
            "remaining": self.remaining,
            "seconds": self.seconds,
            "expires_in": expires_in,
            "ratio": self.ratio,
            "seed": self.seed,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "objects": sorted(self.objects) if self.objects is not None else None,
            "message": self.message,
            "hits": self.hits,
            "active": self.active(now),
            **self.describe_extra(),
        }
        return {key: values[key] for key in self.DESCRIBE_KEYS}


# How each numeric fault option is checked.
NUMBER_OPTIONS: dict[str, Json] = {
    "count": {"minimum": 1, "integer": True},
    "seconds": {"exclusive_min": True},
    "ratio": {"maximum": 1.0},
    "retry_after": {},
    "latency_ms": {},
    "status": {"minimum": 500, "maximum": 599, "integer": True},
}


def number_option(
    spec: Json,
    name: str,
    errors: list[Json],
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    integer: bool = False,
    exclusive_min: bool = False,
) -> Any:
    value = spec.get(name)
    if value is None:
        return None
    ok = (isinstance(value, int) if integer else isinstance(value, int | float)) and not isinstance(
        value, bool
    )
    if ok:
        too_small = value <= minimum if exclusive_min else value < minimum
        ok = not too_small and (maximum is None or value <= maximum)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        if maximum is not None:
            bound += f" and <= {maximum:g}"
        errors.append({"field": name, "message": f"must be {kind} {bound}"})
        return None
    return value


def names_option(
    spec: Json, name: str, errors: list[Json], upper: bool = False
) -> list[str] | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append({"field": name, "message": "must be a list of strings"})
        return None
    return [v.upper() if upper else v for v in value]


def parse_fault_spec(
    spec: Any,
    modes: Iterable[str],
    numbers: tuple[str, ...],
    texts: tuple[str, ...],
    lists: tuple[str, ...],
) -> Json:
    """Check a fault spec: its mode, then the ``numbers``, the seed, the ``texts`` and the
    ``lists`` (``methods`` upper-cased) in the given order; any other key is unknown.

    Answers every option (None when absent) or raises BadRequest with all the field errors.
    """
    if not isinstance(spec, dict):
        raise BadRequest(
            "a fault must be a JSON object",
            [{"field": "body", "message": "expected a JSON object"}],
        )
    modes = tuple(modes)
    errors: list[Json] = []
    mode = spec.get("mode")
    if mode not in modes:
        errors.append({"field": "mode", "message": f"must be one of {', '.join(modes)}"})
    known = {"mode", "seed", *numbers, *texts, *lists}
    errors.extend({"field": k, "message": "unknown fault option"} for k in spec if k not in known)
    options: Json = {"mode": str(mode)}
    for name in numbers:
        options[name] = number_option(spec, name, errors, **NUMBER_OPTIONS[name])
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
        errors.append({"field": "seed", "message": "must be an integer or a string"})
        seed = None
    options["seed"] = seed
    for name in texts:
        options[name] = spec.get(name)
        if options[name] is not None and not isinstance(options[name], str):
            errors.append({"field": name, "message": "must be a string"})
    for name in lists:
        options[name] = names_option(spec, name, errors, upper=name == "methods")
    if errors:
        raise BadRequest("invalid fault", errors)
    return options


def common_fault_args(options: Json) -> Json:
    """The FaultBase keyword arguments of parsed options (defaults filled in)."""
    seconds, ratio = options.get("seconds"), options.get("ratio")
    status, latency_ms = options.get("status"), options.get("latency_ms")
    methods, objects = options.get("methods"), options.get("objects")
    return {
        "mode": options["mode"],
        "count": options.get("count"),
        "seconds": float(seconds) if seconds is not None else None,
        "ratio": float(ratio) if ratio is not None else None,
        "seed": options["seed"],
        "status": status if status is not None else 500,
        "latency_ms": latency_ms if latency_ms is not None else 200,
        "methods": frozenset(methods) if methods is not None else None,
        "objects": frozenset(objects) if objects is not None else None,
        "message": options.get("message"),
        "rng": random.Random(options["seed"]),
    }


@dataclass
class RetryAfterFault(FaultBase):
    """A fault of the vendors whose fakes need nothing beyond the common options but a
    `retry_after` on their 429s (Pipedrive, Zoho): with it the answers carry Retry-After,
    without it only what the vendor sends when it gives no wait."""

    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "mode",
        "count",
        "remaining",
        "seconds",
        "expires_in",
        "ratio",
        "seed",
        "status",
        "retry_after",
        "latency_ms",
        "methods",
        "objects",
        "message",
        "hits",
        "active",
    )

    retry_after: float | None = None

    def describe_extra(self) -> Json:
        return {"retry_after": self.retry_after}


def parse_retry_after_fault(spec: Any, fault_id: int, modes: Iterable[str]) -> RetryAfterFault:
    """A `POST /_control/faults` spec of one of `modes`, checked, as a RetryAfterFault."""
    options = parse_fault_spec(
        spec,
        tuple(modes),
        numbers=("count", "seconds", "ratio", "status", "retry_after", "latency_ms"),
        texts=("message",),
        lists=("methods", "objects"),
    )
    return RetryAfterFault(
        id=fault_id, retry_after=options.get("retry_after"), **common_fault_args(options)
    )
