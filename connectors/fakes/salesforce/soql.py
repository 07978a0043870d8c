"""The SOQL the connector sends, parsed and answered: ``SELECT f, ... FROM Object [WHERE cond
[AND cond ...]] [ORDER BY f [ASC|DESC], ...] [LIMIT n]`` with ``Field = 'value'``, ``Field =
null``, ``Field IN ('a', ...)`` and ``Field >= 2024-05-01T12:00:00.000Z`` (``>``, ``<``, ``<=``
too: a datetime literal, unquoted, as SOQL writes one; compared as instants). String
comparison ignores case, as Salesforce's does. Quoted strings take SOQL's escape
sequences (``\\'``, ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ...): an unescaped quote inside a value
is a MALFORMED_QUERY, as it is in Salesforce
(https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.fakes.salesforce.texts import malformed_query

_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def instant(text: str) -> datetime:
    """A datetime as SOQL and the API write it (2024-05-01T12:00:00.000Z, ...+0000)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise malformed_query(
            f"line 1:0 value of filter criterion '{text}' is not a datetime"
        ) from None


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<sym>[<>]=?|[(),=])|(?P<word>[\w.:+-]+))", re.S
)


@dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[str | None, ...]  # `=`: one value; `IN`: several
    op: str = "="  # `=` (and IN), or a comparison of instants: >=, >, <=, <


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: tuple[Condition, ...]
    limit: int | None
    order: tuple[tuple[str, bool], ...] = ()  # (field, descending)


def _unquote(token: str) -> str:
    out = []
    body = token[1:-1]
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in "%_":
                out.append("\\" + nxt)  # only meaningful in LIKE; kept as written
            else:
                raise malformed_query(f"Invalid string literal '{body}'. Illegal escape sequence")
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise malformed_query(f"unexpected token: '{text[pos:].split()[0][:40]}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse(text: str) -> Query:
    tokens = _tokens(text)
    pos = 0

    def take(kind: str | None = None, word: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise malformed_query("unexpected end of query")
        got_kind, value = tokens[pos]
        if (kind and got_kind != kind) or (word and value.upper() != word):
            raise malformed_query(f"unexpected token: '{value}'")
        pos += 1
        return value

    def peek(word: str) -> bool:
        return pos < len(tokens) and tokens[pos][1].upper() == word

    take("word", "SELECT")
    fields = [take("word")]
    while peek(","):
        take("sym")
        fields.append(take("word"))
    take("word", "FROM")
    sobject = take("word")
    where: list[Condition] = []
    if peek("WHERE"):
        take("word")
        while True:
            name = take("word")
            if pos < len(tokens) and tokens[pos][1] in ("<", "<=", ">", ">="):
                op = take("sym")
                where.append(Condition(name, (take("word"),), op))
            elif peek("="):
                take("sym")
                if pos < len(tokens) and tokens[pos][1].lower() == "null":
                    take("word")
                    where.append(Condition(name, (None,)))
                else:
                    where.append(Condition(name, (_unquote(take("str")),)))
            else:
                take("word", "IN")
                take("sym", "(")
                values = [_unquote(take("str"))]
                while peek(","):
                    take("sym")
                    values.append(_unquote(take("str")))
                take("sym", ")")
                where.append(Condition(name, tuple(values)))
            if not peek("AND"):
                break
            take("word")
    order: list[tuple[str, bool]] = []
    if peek("ORDER"):
        take("word")
        take("word", "BY")
        while True:
            name = take("word")
            descending = False
            if peek("ASC") or peek("DESC"):
                descending = take("word").upper() == "DESC"
            order.append((name, descending))
            if not peek(","):
                break
            take("sym")
    limit = None
    if peek("LIMIT"):
        take("word")
        limit = int(take("word"))
    if pos != len(tokens):
        raise malformed_query(f"unexpected token: '{tokens[pos][1]}'")
    return Query(tuple(fields), sobject, tuple(where), limit, tuple(order))


def matcher(where: tuple[Condition, ...]) -> Any:
    """A test of a record against the conditions (each condition's values lowered once)."""
    wanted = [
        (c.field, None if c.values == (None,) else {v.lower() for v in c.values if v is not None})
        for c in where
        if c.op == "="
    ]
    compared = [(c.field, c.op, instant(str(c.values[0]))) for c in where if c.op != "="]

    def test(record: dict[str, Any]) -> bool:
        for field, op, bound in compared:
            value = record.get(field)
            if value is None or not _COMPARE[op](instant(str(value)), bound):
                return False
        for field, values in wanted:
            value = record.get(field)
            if values is None:
                if value not in (None, ""):
                    return False
            elif value is None or str(value).lower() not in values:
                return False
        return True

    return test
