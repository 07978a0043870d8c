"""The stored records: ids, unique-property indexes (email), create/update/archive and the
SimplePublicObject rendering of a record."""

from __future__ import annotations

from typing import Any

from connectors.fakes.app import Json
from connectors.fakes.hubspot.faults import Fault
from connectors.fakes.hubspot.properties import ObjectType
from connectors.fakes.hubspot.texts import now_iso
from connectors.fakes.state import StateBase


def normalise(prop: str, value: str) -> str:
    """A unique property's value as compared: emails case-insensitively."""
    return value.strip().lower() if prop == "email" else value


class Records(StateBase[Fault]):
    """Records per object type, with their unique-value indexes."""

    types: dict[str, ObjectType]
    next_id: int
    records: dict[str, dict[str, Json]]
    unique: dict[tuple[str, str], dict[str, str]]
    created: int
    updated: int

    def clear_records(self) -> None:
        self.records = {name: {} for name in self.types}
        self.unique = {}
        self.created = 0
        self.updated = 0

    # --- records ------------------------------------------------------------------------------

    def _unique_index(self, obj: str, prop: str) -> dict[str, str]:
        return self.unique.setdefault((obj, prop), {})

    def find(self, otype: ObjectType, ident: str, id_property: str | None) -> Json | None:
        table = self.records[otype.name]
        if id_property in (None, "hs_object_id"):
            return table.get(ident)
        assert id_property is not None
        found = self._unique_index(otype.name, id_property).get(normalise(id_property, ident))
        return table.get(found) if found is not None else None

    def unique_conflict(
        self, otype: ObjectType, clean: dict[str, str], own_id: str | None
    ) -> str | None:
        for prop, value in clean.items():
            pdef = otype.properties.get(prop)
            if pdef is None or not pdef.unique or value == "":
                continue
            existing = self._unique_index(otype.name, prop).get(normalise(prop, value))
            if existing is not None and existing != own_id:
                return existing
        return None

    def _index(self, otype: ObjectType, rec: Json, old: dict[str, str]) -> None:
        for prop, pdef in otype.properties.items():
            if not pdef.unique:
                continue
            index = self._unique_index(otype.name, prop)
            before = old.get(prop, "")
            after = rec["properties"].get(prop, "")
            if before and index.get(normalise(prop, before)) == rec["id"]:
                del index[normalise(prop, before)]
            if after:
                index[normalise(prop, after)] = rec["id"]

    def create(self, otype: ObjectType, clean: dict[str, str]) -> Json:
        ident = str(self.next_id)
        self.next_id += 1
        stamp = now_iso()
        props = {k: v for k, v in clean.items()}
        props.setdefault("createdate", stamp)
        props["hs_object_id"] = ident
        props[otype.last_modified] = stamp
        rec = {
            "id": ident,
            "properties": props,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.records[otype.name][ident] = rec
        self._index(otype, rec, {})
        self.created += 1
        return rec

    def update(self, otype: ObjectType, rec: Json, clean: dict[str, str]) -> Json:
        old = dict(rec["properties"])
        stamp = now_iso()
        rec["properties"].update(clean)
        rec["properties"][otype.last_modified] = stamp
        rec["updatedAt"] = stamp
        self._index(otype, rec, old)
        self.updated += 1
        return rec

    def archive(self, otype: ObjectType, rec: Json) -> None:
        old = dict(rec["properties"])
        rec["properties"] = {}
        self._index(otype, rec, old)
        del self.records[otype.name][rec["id"]]

    def render(
        self, otype: ObjectType, rec: Json, requested: list[str] | None, *, everything: bool = False
    ) -> Json:
        """A SimplePublicObject [SPEC]. Without ``properties`` the object type's defaults come
        back; with them, the requested ones plus hs_object_id, createdate and the last-modified
        date; a requested property that has no value is null and an unknown one is left out
        (the spec: "If any of the specified properties are not present on the requested
        object(s), they will be ignored")."""
        stored = rec["properties"]
        if everything:
            props: dict[str, Any] = dict(sorted(stored.items()))
        else:
            names = (
                list(otype.defaults)
                if requested is None
                else [
                    *requested,
                    "hs_object_id",
                    "createdate",
                    otype.last_modified,
                ]
            )
            props = {
                name: stored.get(name)
                for name in sorted(set(names))
                if name in otype.properties or name in stored
            }
        return {
            "id": rec["id"],
            "properties": props,
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
            "archived": False,
        }

    def dump(self, obj: str | None) -> Json:
        with self.lock:
            return {
                "records": [
                    {"object": name, **self.render(self.types[name], rec, None, everything=True)}
                    for name, table in self.records.items()
                    if obj is None or name == obj
                    for rec in table.values()
                ]
            }
