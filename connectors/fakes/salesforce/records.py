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

    def query(self, text: str, version: str) -> Response:
        q = parse(text)
        sobject = self.state.schemas.sobject(q.sobject)
        if sobject is None:
            raise SfError("INVALID_TYPE", f"sObject type '{q.sobject}' is not supported.")
        for name in (*q.fields, *(c.field for c in q.where)):
            if sobject.field(name) is None:
                raise no_such_column(name, sobject.name)
        where = tuple(
            type(c)(sobject.field(c.field).name, c.values)  # type: ignore[union-attr]
            for c in q.where
        )
        test = matcher(where)
        rows = [r for r in self.state.records[sobject.name].values() if test(r)]
        if q.limit is not None:
            rows = rows[: q.limit]
        shown = [self._shown(sobject, r, list(q.fields), version) for r in rows]
        return Response(200, {"totalSize": len(shown), "done": True, "records": shown})

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
