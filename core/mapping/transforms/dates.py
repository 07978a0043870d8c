"""Date transforms: `date` and `datetime`, from text (ISO 8601 or human) or epoch numbers.

`parse_moment` reads the value (never guessing a missing year, month or day, and never using
the machine's local zone); `date` keeps the calendar date as written, `datetime` converts to
UTC; both write ISO text or epoch milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

from core.mapping.transforms.base import (
    Transform,
    TransformError,
    _choice,
    _flag,
    _options,
    kind_of,
    show,
)

# -- dates --------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_MS_PER_DAY = 86_400_000
#: two defaults for the parts a date string leaves out: where they disagree, it left them out
_DEFAULTS = (datetime(2000, 1, 1), datetime(2004, 3, 3))
_EPOCH_TEXT = re.compile(r"-?[0-9]{10,}(?:\.[0-9]+)?")
_UTC_NAMES = frozenset({"UTC", "GMT", "UT", "Z"})
#: epoch numbers at least this large are milliseconds, smaller ones seconds (1e11 s is the
#: year 5138; 1e11 ms is March 1973)
_MS_THRESHOLD = 100_000_000_000


def _zone(name: str | None, offset: int | None) -> tzinfo | None:
    """dateutil's tzinfos hook: offsets and UTC names only, never the machine's local zone."""
    if offset is not None:
        return UTC if offset == 0 else timezone(timedelta(seconds=offset))
    if name is None:
        return None
    if name.upper() in _UTC_NAMES:
        return UTC
    raise TransformError(f"unknown time zone {name!r}; write an offset such as +02:00, or Z")


def _from_epoch(number: float | int) -> datetime:
    if isinstance(number, float) and not math.isfinite(number):
        raise TransformError(f"not a date: {number}")
    ms = number if abs(number) >= _MS_THRESHOLD else number * 1000
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        raise TransformError(f"epoch time {show(number)} is out of range") from None


def parse_moment(value: Any, *, dayfirst: bool = False) -> datetime:
    """A date or time from text (ISO 8601 or a human format) or epoch seconds/milliseconds.

    Naive results stay naive (no zone was given). Raises TransformError only.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TransformError(
            f"expects a date (text or epoch number), got {kind_of(value)} {show(value)}"
        )
    if not isinstance(value, str):
        return _from_epoch(value)
    text = value.strip()
    if not text:
        raise TransformError("not a date: it is empty")
    if len(text) > 64:
        raise TransformError(f"not a date: {show(text)} is too long")
    if _EPOCH_TEXT.fullmatch(text):
        return _from_epoch(float(text) if "." in text else int(text))
    from dateutil import parser

    try:
        first, second = (
            parser.parse(text, default=d, dayfirst=dayfirst, tzinfos=_zone) for d in _DEFAULTS
        )
    except TransformError:
        raise
    except Exception:  # ParserError, OverflowError, and whatever hostile input finds
        raise TransformError(f"not a recognisable date: {show(text)}") from None
    missing = [
        part for part in ("year", "month", "day") if getattr(first, part) != getattr(second, part)
    ]
    if missing:
        raise TransformError(f"incomplete date {show(text)}: no {'/'.join(missing)}")
    return first


def _date_value(value: Any, fmt: str, dayfirst: bool) -> str | int:
    day = parse_moment(value, dayfirst=dayfirst).date()  # the calendar date as written
    if fmt == "epoch_ms":
        return (day - _EPOCH_DAY).days * _MS_PER_DAY  # UTC midnight, as HubSpot wants
    return day.isoformat()


def _datetime_value(value: Any, fmt: str, dayfirst: bool) -> str | int:
    moment = parse_moment(value, dayfirst=dayfirst)
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise TransformError(f"{show(value)} is out of range in UTC") from None
    if fmt == "epoch_ms":
        return (moment - _EPOCH) // timedelta(milliseconds=1)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _dates(name: str, convert: Callable[[Any, str, bool], Any]) -> Callable[[Any], Transform]:
    def factory(args: Any) -> Transform:
        if isinstance(args, str):
            args = {"format": args}
        options = _options(
            name, args, {"format": "", "dayfirst": ""}, f"{{{name}: {{format: epoch_ms}}}}"
        )
        fmt = _choice(name, "format", options.get("format", "iso"), ("iso", "epoch_ms"))
        dayfirst = _flag(name, "dayfirst", options.get("dayfirst", False))
        return lambda value, body: convert(value, fmt, dayfirst)

    return factory
