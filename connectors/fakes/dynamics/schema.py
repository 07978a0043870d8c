"""The CSDL-like description (``metadata.json``) and the checks every write goes through:
unknown columns, types, lengths, choice values, alternate keys, `@odata.bind` navigation, each
failing with Dataverse's code and message (``texts.py``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.fakes.dynamics.texts import (
    DvError,
    outside_range,
    too_long,
    unknown_property,
    wrong_type,
)

METADATA_FILE = Path(__file__).with_name("metadata.json")
_BIND = re.compile(r"^/?([a-z_]+)\(([0-9a-fA-F-]{36})\)$")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    max_length: int | None = None
    options: tuple[int, ...] = ()
    read_only: bool = False


@dataclass(frozen=True)
class EntitySet:
    name: str  # contacts
    entity: str  # contact
    key: str  # contactid
    alternate_keys: dict[str, tuple[str, ...]]  # key name -> its columns
    columns: dict[str, Column]
    navigation: dict[str, tuple[str, str]]  # nav property -> (entity set, lookup column)

    def key_for(self, columns: list[str]) -> str | None:
        """The alternate key made of exactly these columns, if one is defined."""
        wanted = sorted(columns)
        for name, cols in self.alternate_keys.items():
            if sorted(cols) == wanted:
                return name
        return None


@dataclass(frozen=True)
class Metadata:
    sets: dict[str, EntitySet]

    @classmethod
    def load(cls, path: Path = METADATA_FILE) -> Metadata:
        data = json.loads(path.read_text())
        sets = {}
        for name, spec in data["entitySets"].items():
            columns = {
                col: Column(
                    col,
                    c["type"],
                    c.get("maxLength"),
                    tuple(c.get("options", ())),
                    c.get("readOnly", False),
                )
                for col, c in spec["properties"].items()
            }
            sets[name] = EntitySet(
                name,
                spec["entity"],
                spec["key"],
                {k: tuple(v) for k, v in spec["alternateKeys"].items()},
                columns,
                {n: (v["entitySet"], v["column"]) for n, v in spec["navigation"].items()},
            )
        return cls(sets)


def _check(entity: EntitySet, column: Column, value: Any) -> None:
    kind = column.type
    if kind == "Edm.String":
        if not isinstance(value, str):
            raise wrong_type(value, kind)
        if column.max_length is not None and len(value) > column.max_length:
            raise too_long(column.name, entity.entity, column.max_length)
    elif kind == "Edm.Int32":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(value, kind)
        if column.options and value not in column.options:
            raise outside_range(column.name, entity.entity, value, list(column.options))
    elif kind == "Edm.Boolean":
        if not isinstance(value, bool):
            raise wrong_type(value, kind)
    elif kind == "Edm.Date":
        try:
            ok = isinstance(value, str) and len(value) == 10 and bool(date.fromisoformat(value))
        except ValueError:
            ok = False
        if not ok:
            raise wrong_type(value, kind)
    elif kind == "Edm.DateTimeOffset":
        try:
            ok = isinstance(value, str) and "T" in value
            ok = ok and bool(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            ok = False
        if not ok:
            raise wrong_type(value, kind)


def check_write(
    entity: EntitySet, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """(the column values to store, the bindings: lookup column -> (entity set, id)), or the
    DvError Dataverse answers. Read-only columns are ignored, as the platform sets them."""
    values: dict[str, Any] = {}
    binds: dict[str, tuple[str, str]] = {}
    for name, value in body.items():
        if name.startswith("@"):
            continue  # instance annotations (@odata.type...)
        if name.endswith("@odata.bind"):
            nav = name.removesuffix("@odata.bind")
            if nav not in entity.navigation:
                raise unknown_property(nav, entity.entity)
            target_set, column = entity.navigation[nav]
            match = _BIND.match(value) if isinstance(value, str) else None
            if match is None or match.group(1) != target_set:
                raise wrong_type(value, f"Microsoft.Dynamics.CRM.{target_set.rstrip('s')}")
            binds[column] = (target_set, match.group(2).lower())
            continue
        column_spec = entity.columns.get(name)
        if column_spec is None:
            raise unknown_property(name, entity.entity)
        if column_spec.read_only:
            continue
        if value is not None:
            _check(entity, column_spec, value)
        values[name] = value
    return values, binds


__all__ = ["Column", "DvError", "EntitySet", "Metadata", "check_write"]
