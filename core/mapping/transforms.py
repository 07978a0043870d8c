"""Field transforms: small pure functions, each raising TransformError with what was wrong.

A transform step in YAML is a name (`email`) or a one-key mapping with its arguments
(`{e164: {region: US}}`, `{truncate: 80}`). `build_transform` turns a step into a callable
once, at configuration time, so a bad argument is a configuration error (ValueError, reported
by the loader with file, line and key), never a dead letter.

Every step is a pure function of (value, event body): most look only at the value; `template`
and `join` may also read other paths of the body. At run time a step raises TransformError
(and nothing else) when the value cannot become what the target expects.

    strip, lower, upper        text only
    email                      trim + lowercase + syntax check (no network)
    e164                       {e164: {region: US}} or {e164: US}; region: for numbers without +
    date, datetime             {date: {format: iso | epoch_ms, dayfirst: false}} or {date: epoch_ms}
    map                        {map: {values: {from: to}, default: x, ignore_case: false}}
    truncate                   {truncate: 80}
    first_name, last_name      split a full name ("Ada Lovelace", "Lovelace, Ada")
    template                   {template: "{data.object.first} {data.object.last}"}; {.} = value
    join                       {join: {paths: [a, b], separator: " "}}, or {join: ", "} on a list
    bool, number               parse "yes"/"0"/true..., "12.5"/"-3"/7...
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

from core.mapping.normalize import normalize_email
from core.paths import PathSyntaxError, get_path, parse_path

Transform = Callable[[Any, Any], Any]

#: the placeholder / path that means "the field's own value" in template and join
CURRENT = "."


class TransformError(ValueError):
    """A value that the transform cannot turn into what the target expects."""


@dataclass(frozen=True)
class Step:
    """One built transform step: call it as step(value, body)."""

    name: str
    func: Transform
    #: every value the step can produce, when that is a closed set (map): checked against the
    #: target field spec at load time
    outputs: tuple[Any, ...] | None = None

    def __call__(self, value: Any, body: Any = None) -> Any:
        return self.func(value, body)


def show(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def kind_of(value: Any) -> str:
    """A value's kind in an error message (text, number, boolean, list, object, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _require_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TransformError(f"{name} expects text, got {kind_of(value)} {show(value)}")
    return value


# -- argument checking (build time: ValueError) ------------------------------------------------

def _no_args(name: str, func: Callable[[Any], Any]) -> Callable[[Any], Transform]:
    def factory(args: Any) -> Transform:
        if args is not None:
            raise ValueError(f"{name} takes no arguments (write it as `{name}`)")
        return lambda value, body: func(value)

    return factory


def _options(name: str, args: Any, allowed: Mapping[str, str], example: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise ValueError(f"{name} takes a mapping of options, e.g. {example}")
    unknown = sorted(str(k) for k in args if k not in allowed)
    if unknown:
        raise ValueError(f"{name}: unknown option {unknown[0]!r}; expected: "
                         f"{', '.join(allowed)} (e.g. {example})")
    return dict(args)


def _choice(name: str, option: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: {option} must be one of {', '.join(choices)}, "
                         f"got {show(value)}")
    return str(value)


def _flag(name: str, option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {option} must be true or false, got {show(value)}")
    return value


# -- text ---------------------------------------------------------------------------------------

def _text(name: str, func: Callable[[str], Any]) -> Callable[[Any], Transform]:
    return _no_args(name, lambda value: func(_require_text(name, value)))


def _email_value(value: Any) -> str:
    from email_validator import EmailNotValidError, validate_email

    email = normalize_email(_require_text("email", value))
    if not email:
        raise TransformError("not a valid email address: it is empty")
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise TransformError(f"not a valid email address: {exc}") from None
    return email


def _truncate(args: Any) -> Transform:
    if not isinstance(args, int) or isinstance(args, bool) or args < 1:
        raise ValueError("truncate takes a positive length, e.g. {truncate: 80}")
    return lambda value, body: _require_text("truncate", value)[:args]


# -- phone numbers ------------------------------------------------------------------------------

def phone_region(value: Any) -> str:
    """A default region for phone parsing ('US'), or ValueError."""
    import phonenumbers

    region = value.upper() if isinstance(value, str) else None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"e164: unknown region {show(value)}; expected a two-letter country "
                         "code such as US, GB or DE")
    return str(region)


def to_e164(value: str, region: str | None) -> str:
    """`(415) 555-0123` with region US -> `+14155550123`. Raises TransformError only."""
    import phonenumbers

    text = value.strip()
    if not text:
        raise TransformError("not a phone number: it is empty")
    try:
        number = phonenumbers.parse(text, region)
        possible = phonenumbers.is_possible_number(number)
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE \
                and region is None and not text.startswith("+"):
            raise TransformError(
                f"{show(text)} has no country code (+1, +44, ...) and no default region is "
                "set (e.g. {e164: {region: US}})") from None
        raise TransformError(f"not a phone number: {exc._msg}") from None
    except Exception as exc:  # the parser on hostile input: still only a bad value
        raise TransformError(f"not a phone number ({type(exc).__name__})") from None
    if not possible:
        raise TransformError(f"{show(text)} is not a possible phone number for its country")
    return formatted


def _e164(args: Any) -> Transform:
    if isinstance(args, str):
        args = {"region": args}
    options = _options("e164", args, {"region": ""}, "{e164: {region: US}}")
    region = phone_region(options["region"]) if options.get("region") is not None else None

    def apply(value: Any, body: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return to_e164(_require_text("e164", value), region)

    return apply


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
        raise TransformError(f"expects a date (text or epoch number), got {kind_of(value)} "
                             f"{show(value)}")
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
        first, second = (parser.parse(text, default=d, dayfirst=dayfirst, tzinfos=_zone)
                         for d in _DEFAULTS)
    except TransformError:
        raise
    except Exception:  # ParserError, OverflowError, and whatever hostile input finds
        raise TransformError(f"not a recognisable date: {show(text)}") from None
    missing = [part for part in ("year", "month", "day")
               if getattr(first, part) != getattr(second, part)]
    if missing:
        raise TransformError(f"incomplete date {show(text)}: no {'/'.join(missing)}")
    return first


def _date_value(value: Any, fmt: str, dayfirst: bool) -> str | int:
    day = parse_moment(value, dayfirst=dayfirst).date()   # the calendar date as written
    if fmt == "epoch_ms":
        return (day - _EPOCH_DAY).days * _MS_PER_DAY      # UTC midnight, as HubSpot wants
    return day.isoformat()


def _datetime_value(value: Any, fmt: str, dayfirst: bool) -> str | int:
    moment = parse_moment(value, dayfirst=dayfirst)
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None \
            else moment.astimezone(UTC)
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
        options = _options(name, args, {"format": "", "dayfirst": ""},
                           f"{{{name}: {{format: epoch_ms}}}}")
        fmt = _choice(name, "format", options.get("format", "iso"), ("iso", "epoch_ms"))
        dayfirst = _flag(name, "dayfirst", options.get("dayfirst", False))
        return lambda value, body: convert(value, fmt, dayfirst)

    return factory


# -- picklists ----------------------------------------------------------------------------------

def _map_key(value: Any, ignore_case: bool) -> str:
    if isinstance(value, bool):
        key = "true" if value else "false"
    elif value is None:
        key = "null"
    else:
        key = str(value).strip()
    return key.casefold() if ignore_case else key


def _map(args: Any) -> Transform:
    example = "{map: {values: {gold: Gold, silver: Silver}, default: Other}}"
    options = _options("map", args, {"values": "", "default": "", "ignore_case": ""}, example)
    values = options.get("values")
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"map needs `values`, a non-empty mapping from source to target "
                         f"values, e.g. {example}")
    ignore_case = _flag("map", "ignore_case", options.get("ignore_case", False))
    table: dict[str, Any] = {}
    for source, target in values.items():
        if isinstance(source, (list, dict)):
            raise ValueError(f"map: {show(source)} cannot be a source value")
        key = _map_key(source, ignore_case)
        if key in table and table[key] != target:
            raise ValueError(f"map: source values {show(source)} and another one are the same "
                             f"key {key!r} (values are compared as trimmed text"
                             f"{', ignoring case' if ignore_case else ''})")
        table[key] = target
    has_default = "default" in options
    default = options.get("default")
    expected = ", ".join(sorted(table))

    def apply(value: Any, body: Any) -> Any:
        if isinstance(value, (list, Mapping)):
            raise TransformError(f"map expects a single value, got {kind_of(value)} {show(value)}")
        key = _map_key(value, ignore_case)
        if key in table:
            return table[key]
        if has_default:
            return default
        raise TransformError(f"unknown value {show(value)}; expected one of: {expected} "
                             "(or give the map a `default`)")

    outputs = (*table.values(), default) if has_default else tuple(table.values())
    return Step("map", apply, outputs)


# -- names --------------------------------------------------------------------------------------

_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})


def split_name(full: str) -> tuple[str, str]:
    """("first", "last") of a full name: `Ada Lovelace`, `Ada King Lovelace` (last: the rest),
    `Lovelace, Ada` (reversed), `Martin Luther King, Jr.` (a suffix stays with the last name).
    """
    text = " ".join(full.split())
    head, comma, tail = text.partition(",")
    suffix = ""
    if comma and tail.strip().lower().rstrip(".") not in _SUFFIXES:
        return tail.strip(), head.strip()
    if comma:
        text, suffix = head.strip(), tail.strip()
    first, _, last = text.partition(" ")
    if suffix:
        last = f"{last}, {suffix}" if last else suffix
    return first, last


# -- building values from the event -------------------------------------------------------------

def _render(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TransformError(f"{where} is {kind_of(value)} {show(value)}, not a single value")


def _lookup(path: str, value: Any, body: Any) -> Any:
    return value if path == CURRENT else get_path(body, path)


def _check_path(name: str, path: Any) -> str:
    if not isinstance(path, str):
        raise ValueError(f"{name}: {show(path)} is not a dotted path")
    path = path.strip()
    if path != CURRENT:
        try:
            parse_path(path)
        except PathSyntaxError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return path


def parse_template(text: str) -> tuple[str | tuple[str], ...]:
    """`"{a.b} and {{x}}"` -> (("a.b",), " and {x}"): literals and (path,) placeholders."""
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i)
            if end == -1 or "{" in text[i + 1:end]:
                raise ValueError(f"template: '{{' at position {i} is not closed (write '{{{{' "
                                 "for a literal brace)")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((_check_path("template", text[i + 1:end]),))
            i = end + 1
        elif char == "}":
            raise ValueError(f"template: '}}' at position {i} has no opening '{{' (write "
                             "'}}}}' for a literal brace)")
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _template(args: Any) -> Transform:
    if not isinstance(args, str):
        raise ValueError('template takes a text with {dotted.paths}, e.g. '
                         '{template: "{data.object.first} {data.object.last}"}')
    parts = parse_template(args)
    if not any(isinstance(p, tuple) for p in parts):
        raise ValueError("template has no {placeholders}; for a fixed value use `const`")

    def apply(value: Any, body: Any) -> str:
        out = [p if isinstance(p, str) else _render(_lookup(p[0], value, body),
                                                    f"template: {{{p[0]}}}")
               for p in parts]
        return "".join(out).strip()     # missing values render empty

    return apply


def _join(args: Any) -> Transform:
    if isinstance(args, str):
        args = {"separator": args}
    example = '{join: {paths: [data.object.first, data.object.last], separator: " "}}'
    options = _options("join", args, {"paths": "", "separator": ""}, example)
    separator = options.get("separator", " ")
    if not isinstance(separator, str):
        raise ValueError(f"join: separator must be text, got {show(separator)}")
    paths: tuple[str, ...] | None = None
    if "paths" in options:
        raw = options["paths"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"join: paths must be a non-empty list of dotted paths, e.g. "
                             f"{example}")
        paths = tuple(_check_path("join", p) for p in raw)

    def apply(value: Any, body: Any) -> str:
        items: list[Any] = []
        for where, item in ([(p, _lookup(p, value, body)) for p in paths] if paths is not None
                            else [(CURRENT, value)]):
            for element in item if isinstance(item, list) else [item]:
                text = _render(element, f"join: {where}")
                if text.strip():
                    items.append(text)
        return separator.join(items)

    return apply


# -- scalars ------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
    raise TransformError(f"not a yes/no value: {show(value)} (expected true/false, yes/no, "
                         "1/0, on/off)")


def to_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TransformError(f"not a number: {kind_of(value)} {show(value)}")
    if isinstance(value, (int, float)):
        number: int | float = value
    else:
        text = value.strip()
        if len(text) > 100 or not _NUMBER.fullmatch(text):
            hint = " (thousands separators and decimal commas are ambiguous; send plain " \
                   "digits)" if "," in text else ""
            raise TransformError(f"not a number: {show(value)}{hint}")
        integral = not any(c in text for c in ".eE")
        number = int(text) if integral else float(text)
    if isinstance(number, float) and not math.isfinite(number):
        raise TransformError(f"not a finite number: {show(value)}")
    return number


# -- the registry -------------------------------------------------------------------------------

FACTORIES: dict[str, Callable[[Any], Transform]] = {
    "strip": _text("strip", str.strip),
    "lower": _text("lower", str.lower),
    "upper": _text("upper", str.upper),
    "email": _no_args("email", _email_value),
    "e164": _e164,
    "date": _dates("date", _date_value),
    "datetime": _dates("datetime", _datetime_value),
    "map": _map,
    "truncate": _truncate,
    "first_name": _no_args("first_name",
                           lambda v: split_name(_require_text("first_name", v))[0]),
    "last_name": _no_args("last_name", lambda v: split_name(_require_text("last_name", v))[1]),
    "template": _template,
    "join": _join,
    "bool": _no_args("bool", to_bool),
    "number": _no_args("number", to_number),
}


def build_transform(step: Mapping[str, Any]) -> Step:
    """`{"e164": {"region": "US"}}` -> a Step. Raises ValueError on unknown names/args."""
    if not isinstance(step, Mapping) or len(step) != 1:
        raise ValueError(f"a transform is a name or a one-key mapping, got {show(step)}")
    (name, args), = step.items()
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown transform {name!r}; expected one of: "
                         f"{', '.join(sorted(FACTORIES))}")
    built = factory(args)
    return built if isinstance(built, Step) else Step(str(name), built)
