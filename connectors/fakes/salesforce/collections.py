"""sObject Collections in the fake Salesforce: `POST|PATCH /composite/sobjects` and `PATCH
/composite/sobjects/{object}/{externalIdField}`: up to 200 records, `allOrNone`, a result per
record `{id, success, errors: [{statusCode, message, fields}], created}`
(https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html).
"""

from __future__ import annotations

import copy
from typing import Any

from connectors.fakes.app import Response
from connectors.fakes.salesforce.records import Records, fields_of
from connectors.fakes.salesforce.texts import SfError, not_found, rest_errors

COLLECTION_LIMIT = 200  # sObject Collections take up to 200 records


class Collections(Records):
    def collection(
        self, endpoint: str, rest: list[str], body: dict[str, Any], version: str
    ) -> tuple[Response, str | None]:
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise SfError("JSON_PARSER_ERROR", "records: a non-empty list is required")
        if len(records) > COLLECTION_LIMIT:
            error = SfError(
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
            return Response(400, rest_errors(error)), "more than 200 records"
        all_or_none = bool(body.get("allOrNone", False))
        upsert_field = None
        if endpoint == "composite.upsert":
            sobject = self._sobject(rest[2])
            upsert_field = sobject.field(rest[3])
            if upsert_field is None or not upsert_field.external_id:
                raise not_found()
        # allOrNone rolls every record back: keep what to roll back to (only then: a copy of
        # every record per request would cost more than the request)
        snapshot = (
            copy.deepcopy((self.state.records, self.state.dup_index)) if all_or_none else None
        )
        results: list[dict[str, Any]] = []
        violation = None
        for record in records:
            try:
                result = self._collection_one(endpoint, rest, record, upsert_field)
            except SfError as exc:
                result = {"success": False, "errors": [exc.item()]}
                if exc.code == "INVALID_TYPE":
                    violation = exc.message
            results.append(result)
        if snapshot is not None and not all(r["success"] for r in results):
            self.state.records, self.state.dup_index = snapshot
            rolled = SfError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was "
                "using AllOrNone header",
            )
            results = [
                r if not r["success"] else {"id": None, "success": False, "errors": [rolled.item()]}
                for r in results
            ]
        return Response(200, results), violation

    def _collection_one(
        self, endpoint: str, rest: list[str], record: Any, upsert_field: Any
    ) -> dict[str, Any]:
        state = self.state
        if not isinstance(record, dict) or not isinstance(record.get("attributes"), dict):
            raise SfError("INVALID_TYPE", "Each record needs attributes with its type")
        type_name = record["attributes"].get("type")
        sobject = state.schemas.sobject(str(type_name or ""))
        if sobject is None:
            raise SfError("INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        values = fields_of(record)
        self._write_fault(str(values.get("Id") or ""))
        if endpoint == "composite.create":
            if "Id" in values:
                raise SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            record_id, _ = self._save(sobject, values, None)
            return {"id": record_id, "success": True, "errors": []}
        if endpoint == "composite.update":
            record_id = str(values.pop("Id", "") or "")
            if record_id not in state.records[sobject.name]:
                raise SfError("ENTITY_IS_DELETED", "entity is deleted", [])
            self._save(sobject, values, record_id)
            return {"id": record_id, "success": True, "errors": []}
        key = values.get(upsert_field.name)
        if key in (None, ""):
            raise SfError(
                "MISSING_ARGUMENT", f"{upsert_field.name} not specified", [upsert_field.name]
            )
        found = state.find(sobject, upsert_field.name, key)
        if len(found) > 1:
            raise SfError(
                "DUPLICATE_EXTERNAL_ID",
                f"{upsert_field.name}: more than one record found for external id field: "
                + str(found),
                [upsert_field.name],
            )
        record_id, created = self._save(sobject, values, found[0] if found else None)
        return {"id": record_id, "success": True, "errors": [], "created": created}
