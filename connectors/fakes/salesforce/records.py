"""The fake Salesforce's record operations: a save checked against the describe, the
references and the duplicate rules; SOQL queries; records as the API shows them (with their
`attributes`); describe answers. Used by the single-record routes (api.py) and sObject
Collections (collections.py)."""

from __future__ import annotations

from typing import Any

from connectors.fakes.app import Response
from connectors.fakes.salesforce.describe import SObject, check_write
from connectors.fakes.salesforce.faults import WRITE_MODES
from connectors.fakes.salesforce.soql import matcher, parse
from connectors.fakes.salesforce.state import State
from connectors.fakes.salesforce.texts import (
    SfError,
    duplicates,
    no_such_column,
    row_lock,
)


class Records:
    def __init__(self, state: State) -> None:
        self.state = state

    def _sobject(self, name: str) -> SObject:
        sobject = self.state.schemas.sobject(name)
        if sobject is None:
            raise SfError("NOT_FOUND", "The requested resource does not exist", status=404)
        return sobject

    def _write_fault(self, record_id: str) -> None:
        fault = self.state.first_fault(lambda f: f.mode in WRITE_MODES)
        if fault is None:
            return
        if fault.mode == "row_lock":
            raise row_lock(record_id or "001000000000000AAA")
        raise SfError(
            "FIELD_CUSTOM_VALIDATION_EXCEPTION", fault.message or "Validation rule failed", []
        )

    def _save(
        self, sobject: SObject, values: dict[str, Any], record_id: str | None
    ) -> tuple[str, bool]:
        state = self.state
        creating = record_id is None
        clean, error = check_write(sobject, fields_of(values), creating=creating)
        if error is not None:
            raise error
        for name, value in clean.items():
            field = sobject.field(name)
            if field is not None and field.type == "reference" and value is not None:
                target = state.schemas.sobject(field.reference_to[0])
                if target is None or value not in state.records[target.name]:
                    # [unconfirmed] the answer to a well-formed id of no record
                    raise SfError(
                        "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name]
                    )
        duplicate = state.duplicates_of(sobject, clean, record_id)
        if duplicate is not None:
            rule, found = duplicate
            raise duplicates(rule, sobject.name, found, "62.0")
        if record_id is None:
            return state.insert(sobject, clean), True
        state.update(sobject, record_id, clean)
        return record_id, False

    def query(self, text: str, version: str, batch: int | None = None) -> Response:
        """A query's first batch: all of it (up to 2,000 rows, the default batch size), or
        `batch` rows (`Sforce-Query-Options: batchSize=`, 200 to 2,000); the rest waits
        behind `nextRecordsUrl` (queryMore).
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm"""
        q = parse(text)
        sobject = self.state.schemas.sobject(q.sobject)
        if sobject is None:
            raise SfError("INVALID_TYPE", f"sObject type '{q.sobject}' is not supported.")
        for name in (*q.fields, *(c.field for c in q.where), *(f for f, _ in q.order)):
            if sobject.field(name) is None:
                raise no_such_column(name, sobject.name)
        where = tuple(
            type(c)(sobject.field(c.field).name, c.values, c.op)  # type: ignore[union-attr]
            for c in q.where
        )
        test = matcher(where)
        rows = [r for r in self.state.records[sobject.name].values() if test(r)]
        for name, descending in reversed(q.order):  # stable sorts, the last key first
            field = sobject.field(name).name  # type: ignore[union-attr]
            rows.sort(key=lambda r: (r.get(field) is None, str(r.get(field) or "")),
                      reverse=descending)  # fmt: skip
        if q.limit is not None:
            rows = rows[: q.limit]
        shown = [self._shown(sobject, r, list(q.fields), version) for r in rows]
        size = max(200, min(2000, batch)) if batch else 2000
        return self._batch(shown, 0, size, version)

    def query_more(self, locator: str, version: str) -> Response:
        """`GET /query/{locator}-{offset}`: the next batch of an open query."""
        cursor, _, offset = locator.rpartition("-")
        rows = self.state.cursors.get(cursor)
        if rows is None or not offset.isdigit():
            raise SfError("INVALID_QUERY_LOCATOR", "invalid query locator", status=400)
        size = int(self.state.cursors_batch.get(cursor, 2000))
        return self._batch(rows, int(offset), size, version, cursor)

    def _batch(
        self, rows: list[dict[str, Any]], offset: int, size: int, version: str, cursor: str = ""
    ) -> Response:
        page = rows[offset : offset + size]
        body: dict[str, Any] = {"totalSize": len(rows), "done": True, "records": page}
        if offset + size < len(rows):
            if not cursor:
                cursor = f"01gD{self.state.next_locator:011d}"
                self.state.next_locator += 1
                self.state.cursors[cursor] = rows
                self.state.cursors_batch[cursor] = size
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{offset + size}"
        elif cursor:
            self.state.cursors.pop(cursor, None)  # read to its end: the locator is closed
            self.state.cursors_batch.pop(cursor, None)
        return Response(200, body)

    def _shown(
        self, sobject: SObject, record: dict[str, Any], wanted: list[str] | None, version: str
    ) -> dict[str, Any]:
        names = (
            [sobject.field(n).name if sobject.field(n) else n for n in wanted]  # type: ignore[union-attr]
            if wanted
            else [f.name for f in sobject.fields.values()]
        )
        for name in names:
            if sobject.field(name) is None:
                raise no_such_column(name, sobject.name)
        url = f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"
        return {
            "attributes": {"type": sobject.name, "url": url},
            **{name: record.get(name) for name in names},
        }


def fields_of(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}


def describe_body(sobject: SObject) -> dict[str, Any]:
    return {
        "name": sobject.name,
        "keyPrefix": sobject.key_prefix,
        "fields": [
            {
                "name": f.name,
                "label": f.label,
                "type": f.type,
                "length": f.length or 0,
                "nillable": f.nillable,
                "createable": f.createable,
                "updateable": f.updateable,
                "defaultedOnCreate": f.defaulted,
                "externalId": f.external_id,
                "unique": f.unique,
                "restrictedPicklist": f.restricted,
                "picklistValues": [{"value": v, "active": True} for v in f.picklist],
                "referenceTo": list(f.reference_to),
            }
            for f in sobject.fields.values()
        ],
    }
