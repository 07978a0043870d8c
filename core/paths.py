"""Dotted paths into JSON bodies (`data.object.email`, `items[0].id`, `items.0.id`) and the
`header:Name` form used by sources to take a value from a request header instead."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.errors import CrmhubError

MISSING: Any = object()
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class PathSyntaxError(CrmhubError, ValueError):
    """A dotted path (or `header:Name`) written wrongly; says where."""


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[str | int, ...]:
    """`a.b[0].c` -> ("a", "b", 0, "c"). Digits after a dot also index lists."""
    if not path or path.startswith(".") or path.endswith(".") or ".." in path:
        raise PathSyntaxError(f"{path!r} is not a dotted path (expected e.g. data.object.email)")
    parts: list[str | int] = []
    pos = 0
    for match in _SEGMENT.finditer(path):
        gap = path[pos : match.start()]
        if gap not in ("", "."):
            raise PathSyntaxError(f"{path!r}: unexpected {gap!r} at position {pos}")
        name, index = match.groups()
        parts.append(int(index) if index is not None else name)
        pos = match.end()
    if pos != len(path):
        raise PathSyntaxError(f"{path!r}: unexpected {path[pos:]!r} at position {pos}")
    return tuple(parts)


def get_path(document: Any, path: str, default: Any = None) -> Any:
    """The value at `path`, or `default` where any step is absent."""
    node = document
    for part in parse_path(path):
        if isinstance(node, Mapping):
            if isinstance(part, int):
                part = str(part)
            node = node.get(part, MISSING)
        elif isinstance(node, list):
            if isinstance(part, str):
                if not part.isdigit():
                    return default
                part = int(part)
            node = node[part] if -len(node) <= part < len(node) else MISSING
        else:
            return default
        if node is MISSING:
            return default
    return node


#: what joins the parts of a composite value (a source's `event_id: [a, b]`)
COMPOSITE_SEPARATOR = "|"


@dataclass(frozen=True)
class ValueRef:
    """Where a source finds a value: a dotted path into the JSON body, or a request header;
    or, for an id some senders only give as a combination (DocuSign's envelope + status +
    time), several of those whose values are joined with `|`."""

    path: str | None = None
    header: str | None = None
    parts: tuple[ValueRef, ...] = ()

    @classmethod
    def composite(cls, specs: list[str]) -> ValueRef:
        """`[a, b, header:X]`: each part parsed as a single reference."""
        return cls(parts=tuple(cls.parse(spec) for spec in specs))

    @property
    def reads_header(self) -> bool:
        return self.header is not None or any(p.reads_header for p in self.parts)

    @classmethod
    def parse(cls, spec: str) -> ValueRef:
        if spec.startswith("header:"):
            name = spec[len("header:") :].strip()
            if not name:
                raise PathSyntaxError("header: needs a header name, e.g. header:X-Event-Id")
            return cls(header=name)
        parse_path(spec)  # validate now, not at the first webhook
        return cls(path=spec)

    def resolve(self, body: Any, headers: Mapping[str, str]) -> Any:
        if self.parts:
            return self.resolve_text(body, headers)
        if self.header is not None:
            return headers.get(self.header)
        assert self.path is not None
        return get_path(body, self.path)

    def resolve_text(self, body: Any, headers: Mapping[str, str]) -> str | None:
        """The value as an event records it (its id, type, time): None when it is missing or
        not a scalar, booleans as JSON spells them. A composite: every part's text joined
        with `|`, None when any part is missing."""
        if self.parts:
            texts = [part.resolve_text(body, headers) for part in self.parts]
            if any(text is None for text in texts):
                return None
            return COMPOSITE_SEPARATOR.join(str(text) for text in texts)
        value = self.resolve(body, headers)
        if value is None or isinstance(value, (dict, list)):
            return None
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)

    def __str__(self) -> str:
        if self.parts:
            return "[" + ", ".join(str(part) for part in self.parts) + "]"
        return f"header:{self.header}" if self.header is not None else str(self.path)
