"""`mappings.<m>.two_way`: two mappings in opposite directions between two CRMs, each fed by a
polling source on the other CRM, form a pair that syncs one object both ways (core/two_way.py
decides each write). Its shape (marshmallow), its model and its cross-checks.

    hubspot-to-salesforce:  {source: hubspot-contacts, connection: salesforce, ...,
                             two_way: {pair: contacts, wins: newest, fields: {lead_score: hubspot}}}
    salesforce-to-hubspot:  {source: salesforce-contacts, connection: hubspot, ...,
                             two_way: {pair: contacts}}

A side is named by its connection. `wins` settles a conflict (both sides changed a field since
they last agreed): `newest` (the records' own modification stamps) or a side; `fields` names
the side that wins a field whatever the stamps. A field syncs in the directions whose mapping
writes it (field-level direction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields, validate

if TYPE_CHECKING:
    from core.config.model import Config, MappingConfig

NEWEST = "newest"
DEFAULT_KEEP_DAYS = 90.0


@dataclass(frozen=True)
class TwoWaySpec:
    """One mapping's `two_way:` as written (None: not given here; the pair's other mapping
    may give it)."""

    pair: str
    wins: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    keep_days: float | None = None


@dataclass(frozen=True)
class Pair:
    """A pair as both its mappings give it: the sides (connection names), how conflicts
    are settled, and how long what the sides agreed is kept."""

    name: str
    sides: tuple[str, str]
    wins: str
    fields: Mapping[str, str]
    keep_seconds: int

    def rule(self, *names: str) -> str:
        """Who wins a conflict on a field known by any of `names`: its own rule, else `wins`."""
        for name in names:
            if name in self.fields:
                return self.fields[name]
        return self.wins

    def tie_winner(self) -> str:
        """Equal stamps: the side whose connection name sorts first (either worker, deciding
        either direction, names the same winner, so the sides end equal)."""
        return min(self.sides)


class TwoWaySchema(Schema):
    pair = fields.String(required=True, validate=validate.Length(min=1))
    wins = fields.String(validate=validate.Length(min=1))
    fields_ = fields.Dict(
        keys=fields.String(), values=fields.String(), data_key="fields", load_default=dict
    )
    keep_days = fields.Float(validate=validate.Range(min=0, min_inclusive=False))


def build_two_way(spec: Mapping[str, Any] | None) -> TwoWaySpec | None:
    if not spec:
        return None
    return TwoWaySpec(
        pair=spec["pair"],
        wins=spec.get("wins"),
        fields=dict(spec.get("fields_") or {}),
        keep_days=spec.get("keep_days"),
    )


def source_field(path: str) -> str:
    """The source-side field a mapping path reads: its last segment (`properties.lifecyclestage`
    reads HubSpot's `lifecyclestage`)."""
    return path.rsplit(".", 1)[-1]


def field_names(mapping: MappingConfig) -> dict[str, tuple[str, ...]]:
    """Each field a mapping writes, with every name a pair's `fields:` may call it by: its
    target name, then the source fields it reads."""
    return {
        spec.name: (spec.name, *(source_field(p) for p in spec.from_)) for spec in mapping.fields
    }


def pair_mappings(config: Config, pair: str) -> list[MappingConfig]:
    return [m for m in config.mappings.values() if m.two_way and m.two_way.pair == pair]


def origin(config: Config, mapping: MappingConfig) -> str | None:
    """The connection a mapping's records come from (its source's poll), if it polls one."""
    source = config.sources.get(mapping.source)
    return source.poll.connection if source is not None and source.poll is not None else None


def pair_of(config: Config, mapping: MappingConfig) -> Pair | None:
    """The pair `mapping` belongs to, as both its mappings give it (None: not two-way, or a
    pair the configuration checks refuse)."""
    if mapping.two_way is None:
        return None
    members = pair_mappings(config, mapping.two_way.pair)
    if len(members) != 2:
        return None
    specs = [m.two_way for m in members if m.two_way]
    wins = next((s.wins for s in specs if s.wins), NEWEST)
    keep = next((s.keep_days for s in specs if s.keep_days), DEFAULT_KEEP_DAYS)
    rules: dict[str, str] = {}
    for s in specs:
        rules.update(s.fields)
    return Pair(
        name=mapping.two_way.pair,
        sides=(members[0].connection, members[1].connection),
        wins=wins,
        fields=rules,
        keep_seconds=int(keep * 86400),
    )


def two_way_problems(config: Config) -> list[tuple[str, str]]:
    """(key, problem) for each pair that cannot sync as written."""
    problems: list[tuple[str, str]] = []
    pairs: dict[str, list[MappingConfig]] = {}
    for m in config.mappings.values():
        if m.two_way is not None:
            pairs.setdefault(m.two_way.pair, []).append(m)
    for name, members in pairs.items():
        first = f"mappings.{members[0].name}.two_way"
        if len(members) != 2:
            problems.append(
                (
                    f"{first}.pair",
                    f"pair {name!r} has {len(members)} mapping(s) "
                    f"({', '.join(m.name for m in members)}); a pair is exactly two mappings, "
                    "one each way between the same two connections",
                )
            )
            continue
        problems.extend(_pair_problems(config, name, members[0], members[1]))
    return problems


def _pair_problems(
    config: Config, name: str, a: MappingConfig, b: MappingConfig
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for m in (a, b):
        where = f"mappings.{m.name}"
        if origin(config, m) is None:
            problems.append(
                (
                    f"{where}.source",
                    f"two-way pair {name!r}: source {m.source!r} does not poll; a pair's "
                    "mappings read the other CRM's changed records with their modification "
                    "stamps, so each source needs `poll:` on the other mapping's connection",
                )
            )
        if m.match is None:
            problems.append(
                (
                    f"{where}.match",
                    f"two-way pair {name!r}: give `match:` (the key both CRMs share, e.g. the "
                    "email with normalize: email): it links a record to its twin",
                )
            )
    if problems:
        return problems
    if not (origin(config, a) == b.connection and origin(config, b) == a.connection) or (
        a.connection == b.connection
    ):
        problems.append(
            (
                f"mappings.{a.name}.two_way.pair",
                f"two-way pair {name!r}: {a.name!r} goes {origin(config, a)} -> {a.connection} "
                f"and {b.name!r} goes {origin(config, b)} -> {b.connection}; a pair is two "
                "mappings in opposite directions between the same two connections",
            )
        )
        return problems
    sides = (a.connection, b.connection)
    specs = {m.name: m.two_way for m in (a, b) if m.two_way}
    given = sorted({s.wins for s in specs.values() if s.wins})
    if len(given) > 1:
        problems.append(
            (
                f"mappings.{b.name}.two_way.wins",
                f"two-way pair {name!r}: its mappings disagree on `wins` ({', '.join(given)}); "
                "give it once, or the same on both",
            )
        )
    known = {n for m in (a, b) for names in field_names(m).values() for n in names}
    for mname, spec in specs.items():
        where = f"mappings.{mname}.two_way"
        if spec.wins and spec.wins not in (NEWEST, *sides):
            problems.append(
                (
                    f"{where}.wins",
                    f"unknown {spec.wins!r}; expected newest or a side of the pair: "
                    f"{', '.join(sides)}",
                )
            )
        for fname, side in spec.fields.items():
            if fname not in known:
                problems.append(
                    (
                        f"{where}.fields.{fname}",
                        f"neither mapping of pair {name!r} writes or reads a field {fname!r}; "
                        f"name one of: {', '.join(sorted(known))}",
                    )
                )
            elif side not in (NEWEST, *sides):
                problems.append(
                    (
                        f"{where}.fields.{fname}",
                        f"unknown {side!r}; expected newest or a side of the pair: "
                        f"{', '.join(sides)}",
                    )
                )
    return problems
