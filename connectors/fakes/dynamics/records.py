"""The fake Dataverse's record operations on one entity set: read a row (by id or alternate
key), query rows (`$select`, `$filter` of `col eq '...'` joined by `or`, `$top`), create,
upsert / update by key (`If-Match` / `If-None-Match`), each write checked against the
metadata (schema.py). Called under the state's lock, for a request or a $batch part; `undo`
collects what a change set rolls back."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from connectors.fakes.app import Response
from connectors.fakes.dynamics.listing import is_range, query_page
from connectors.fakes.dynamics.schema import EntitySet, check_write
from connectors.fakes.dynamics.state import State
from connectors.fakes.dynamics.texts import (
    DvError,
    bad_syntax,
    business_rule,
    does_not_exist,
    duplicate_key,
    key_not_found,
    not_a_key,
    resource_not_found,
    unknown_property,
)

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$", re.S)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PAIR = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*=\s*'((?:[^']|'')*)'\s*(,|$)")
_CLAUSE = re.compile(r"\s*([a-z_][a-z0-9_]*)\s+eq\s+'((?:[^']|'')*)'\s*(?:(or)\s+|$)")
#: characters that make a key value unusable in a GET or PATCH URL (define-alternate-keys-portal)
UNADDRESSABLE = frozenset("/#<>*%&:\\?+")
Undo = list[tuple[str, str, dict[str, Any] | None]]


def parse_key(inside: str) -> dict[str, str] | str:
    """A key segment's contents: a GUID (the primary key), or alternate key pairs
    `col='value'` with OData's doubled quotes; DvError when neither."""
    if _GUID.match(inside):
        return inside.lower()
    pairs: dict[str, str] = {}
    at = 0
    while at < len(inside):
        match = _PAIR.match(inside, at)
        if match is None:
            raise bad_syntax(f"the key segment ({inside}) is no key")
        pairs[match.group(1)] = match.group(2).replace("''", "'")
        at = match.end()
    if not pairs:
        raise bad_syntax("an empty key segment")
    return pairs


def parse_filter(text: str) -> list[tuple[str, str]]:
    """`col eq 'a' or col eq 'b'` (the one shape the fake answers) as (column, value) pairs."""
    clauses, at = [], 0
    while at < len(text):
        match = _CLAUSE.match(text, at)
        if match is None:
            raise bad_syntax(f"$filter={text[:200]} (the fake answers `col eq '...' or ...`)")
        clauses.append((match.group(1), match.group(2).replace("''", "'")))
        at = match.end()
        if match.group(3) is None and at < len(text):
            raise bad_syntax(f"$filter={text[:200]}")
    return clauses


def missing(entity: EntitySet, key: dict[str, str] | str) -> DvError:
    """A row addressed by id (0x80040217) or by alternate key (0x80060891) that is not there."""
    return (
        does_not_exist(entity.entity, key) if isinstance(key, str) else key_not_found(entity.entity)
    )


class Records:
    def __init__(self, state: State) -> None:
        self.state = state

    def _set(self, name: str) -> EntitySet:
        entity = self.state.metadata.sets.get(name)
        if entity is None:
            raise resource_not_found(name)
        return entity

    def _shown(self, entity: EntitySet, row: dict[str, Any], select: list[str] | None) -> Any:
        names = select or list(entity.columns)
        for name in names:
            if name not in entity.columns:
                raise unknown_property(name, entity.entity)
        context = f"{self.state.config.url}/api/data/v9.2/$metadata#{entity.name}"
        return {
            "@odata.context": f"{context}({','.join(names)})/$entity",
            "@odata.etag": f'W/"{abs(hash(row.get("modifiedon"))) % 10**7}"',
            **{n: row.get(n) for n in names},
            entity.key: row[entity.key],
        }

    def operate(
        self,
        method: str,
        rest: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
        undo: Undo | None = None,
    ) -> tuple[Response, Any, str | None]:
        """(the answer, what the log keeps as the body, a violation) of one request."""
        raw_segments = rest.strip("/").split("/")
        segment = unquote(raw_segments[0])
        match = _SEGMENT.match(segment)
        if match is None or len(raw_segments) > 1:
            raise resource_not_found(unquote(rest.strip("/")))
        entity = self._set(match.group(1))
        select = [c for v in query.get("$select", []) for c in v.split(",") if c]
        key = parse_key(match.group(2)) if match.group(2) is not None else None
        if isinstance(key, dict) and any(UNADDRESSABLE & set(v) for v in key.values()):
            # define-alternate-keys-portal: with one of these characters in a key's data,
            # "GET or PATCH actions won't work" (the answer itself is [unconfirmed])
            error = bad_syntax(f"the key segment ({match.group(2)}) cannot be resolved")
            return Response(400, error.body()), None, "a key value a URL cannot address"
        if method == "GET":
            return self._get(entity, key, query, select, headers), None, None
        body: Any = None
        if method in ("PATCH", "POST"):
            if not headers.get("content-type", "").lower().startswith("application/json"):
                raise DvError(415, "0x80048d19", "Unsupported media type; send application/json")
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                raise bad_syntax("the body is not JSON") from None
            if not isinstance(body, dict):
                raise bad_syntax("the body must be a JSON object")
        if method == "POST" and key is None:
            return self._create(entity, body, headers, select, undo), body, None
        if method == "PATCH" and key is not None:
            return self._upsert(entity, key, body, headers, select, undo), body, None
        raise bad_syntax(f"{method} {rest} is not an operation of the fake")

    def _get(
        self,
        entity: EntitySet,
        key: dict[str, str] | str | None,
        query: dict[str, list[str]],
        select: list[str],
        headers: dict[str, str],
    ) -> Response:
        if key is not None:
            row_id = self._locate(entity, key)
            if row_id is None:
                raise missing(entity, key)
            return Response(200, self._shown(entity, self.state.rows[entity.name][row_id], select))
        rows = list(self.state.rows[entity.name].values())
        text = (query.get("$filter") or [""])[-1]
        if is_range(text) or "$orderby" in query:  # a changed-rows query: listing.py

            def listed(row: dict[str, Any]) -> Any:
                answer = self._shown(entity, row, select)
                answer.pop("@odata.context", None)
                return answer

            url = f"{self.state.config.url}/api/data/v9.2/{entity.name}"
            return query_page(rows, entity, query, headers, url, listed)
        if text:
            clauses = parse_filter(text)
            for column, _ in clauses:
                if column not in entity.columns:
                    raise unknown_property(column, entity.entity)
            found: dict[str, dict[str, Any]] = {}
            for column, value in clauses:
                row_id = self.state.find_by(entity, {column: value})
                if row_id is not None:
                    found[row_id] = self.state.rows[entity.name][row_id]
            rows = list(found.values())
        top = (query.get("$top") or [""])[-1]
        if top.isdigit():
            rows = rows[: int(top)]
        context = f"{self.state.config.url}/api/data/v9.2/$metadata#{entity.name}"
        shown = [self._shown(entity, r, select) for r in rows]
        for row in shown:
            row.pop("@odata.context", None)
        return Response(200, {"@odata.context": f"{context}({','.join(select)})", "value": shown})

    def _locate(self, entity: EntitySet, key: dict[str, str] | str) -> str | None:
        if isinstance(key, str):
            return key if key in self.state.rows[entity.name] else None
        if entity.key_for(list(key)) is None:
            raise not_a_key(entity.entity, list(key))
        return self.state.find_by(entity, key)

    def _save(
        self,
        entity: EntitySet,
        row_id: str | None,
        body: dict[str, Any],
        undo: Undo | None,
    ) -> str:
        state = self.state
        fault = state.first_fault(lambda f: f.mode == "business_rule")
        if fault is not None:
            raise business_rule(fault.message or "The record was refused by a business rule.")
        values, binds = check_write(entity, body)
        for column, (target_set, target_id) in binds.items():
            target = state.metadata.sets[target_set]
            if target_id not in state.rows[target_set]:
                raise does_not_exist(target.entity, target_id)
            values[column] = target_id
        current = dict(state.rows[entity.name].get(row_id or "", {}))
        if state.key_clash(entity, {**current, **values}, row_id):
            raise duplicate_key(400 if row_id is None else 412)
        if undo is not None:
            undo.append((entity.name, row_id or "", dict(current) if row_id else None))
        if row_id is None:
            new_id = state.insert(entity, values)
            if undo is not None:
                undo[-1] = (entity.name, new_id, None)
            return new_id
        state.update(entity, row_id, values)
        return row_id

    def rollback(self, undo: Undo) -> None:
        """Undo a change set's saves, newest first."""
        for set_name, row_id, before in reversed(undo):
            self.state.restore(self.state.metadata.sets[set_name], row_id, before)
        undo.clear()

    def _answer(
        self,
        entity: EntitySet,
        row_id: str,
        created: bool,
        headers: dict[str, str],
        select: list[str],
    ) -> Response:
        url = f"{self.state.config.url}/api/data/v9.2/{entity.name}({row_id})"
        if "return=representation" in headers.get("prefer", ""):
            row = self.state.rows[entity.name][row_id]
            return Response(
                201 if created else 200, self._shown(entity, row, select), {"OData-EntityId": url}
            )
        return Response(204, None, {"OData-EntityId": url})

    def _create(
        self,
        entity: EntitySet,
        body: dict[str, Any],
        headers: dict[str, str],
        select: list[str],
        undo: Undo | None,
    ) -> Response:
        row_id = self._save(entity, None, body, undo)
        return self._answer(entity, row_id, True, headers, select)

    def _upsert(
        self,
        entity: EntitySet,
        key: dict[str, str] | str,
        body: dict[str, Any],
        headers: dict[str, str],
        select: list[str],
        undo: Undo | None,
    ) -> Response:
        row_id = self._locate(entity, key)
        if headers.get("if-match", "").strip() == "*" and row_id is None:
            raise missing(entity, key)
        if headers.get("if-none-match", "").strip() == "*" and row_id is not None:
            raise duplicate_key(412)
        if row_id is None and isinstance(key, dict):
            body = {**body, **key}  # a created row takes its key values from the URL
        elif row_id is None:
            # Dataverse would create the row under that id; the fake does not (no caller does)
            raise missing(entity, key)
        saved = self._save(entity, row_id, body, undo)
        return self._answer(entity, saved, row_id is None, headers, select)
