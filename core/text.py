"""Text that can leave the process: Python strings that UTF-8 cannot encode.

JSON may escape a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a str that no
UTF-8 encoder accepts (UnicodeEncodeError), and Redis's Lua JSON decoder refuses the escape.
Such a value can be neither stored as text nor sent to a target. The receiver still records
the event (its body is kept as the sender's text), escaping what it derives from it (ids,
types, keys); the mapping engine then reports the value as a data error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def unencodable_at(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def first_unencodable(value: Any, where: str = "") -> tuple[str, int, str] | None:
    """(where inside `value`, character index, the character) of the first string in `value`
    (or in its nested lists and mappings, keys included) that UTF-8 cannot encode, or None.
    `where` is "" for `value` itself, else a path such as `[2].name`."""
    if isinstance(value, str):
        index = unencodable_at(value)
        return None if index is None else (where, index, value[index])
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = first_unencodable(
                key, f"{where}.{escaped(str(key))} (its name)"
            ) or first_unencodable(item, f"{where}.{escaped(str(key))}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if found := first_unencodable(item, f"{where}[{index}]"):
                return found
    return None


def escaped(text: str) -> str:
    """`text` with each character UTF-8 cannot encode written as its escape (`\\ud800`):
    deterministic, so a sender's retry yields the same text."""
    if unencodable_at(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def escaped_all(value: Any) -> Any:
    """`value` with every string in it (nested, keys included) `escaped`."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, Mapping):
        return {escaped_all(k): escaped_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escaped_all(v) for v in value]
    return value
