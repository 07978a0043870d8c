"""The batch operations: upsert, read, create, update, archive (at most 100 inputs; 207
multi-status when every input carries its own ``objectWriteTraceId``)."""

from __future__ import annotations

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.hubspot.checks import Checks
from connectors.fakes.hubspot.properties import ObjectType, PropertyDef
from connectors.fakes.hubspot.records import normalise
from connectors.fakes.hubspot.schemas import scalar_text
from connectors.fakes.hubspot.texts import (
    conflict_body,
    hs_error,
    now_iso,
    objects_not_found,
    property_error_body,
)

MAX_HISTORY_BATCH_INPUTS = 50


class BatchOps(Checks):
    def _op_batch_read(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        started = now_iso()
        body = self._body(req, "BatchReadInputSimplePublicObjectId")
        inputs = self._batch_inputs(body)
        history = body.get("propertiesWithHistory") or []
        if history and len(inputs) > MAX_HISTORY_BATCH_INPUTS:
            # [CAPTURE: activepieces/activepieces PR #9359]
            return Response(
                400,
                hs_error(
                    "The maximum number of inputs supported in a batch request for property "
                    f"histories is {MAX_HISTORY_BATCH_INPUTS}. Please reduce the number of items "
                    "and try again",
                    category="VALIDATION_ERROR",
                ),
            )
        id_property = self._id_property(otype, body.get("idProperty"))
        requested = [str(p) for p in body.get("properties") or []] or None
        results: list[Json] = []
        missing: list[str] = []
        with self.state.lock:
            for item in inputs:
                ident = scalar_text(item["id"])
                rec = self.state.find(otype, ident, id_property)
                if rec is None:
                    missing.append(ident)
                    continue
                rendered = self.state.render(otype, rec, requested)
                if history:
                    rendered["propertiesWithHistory"] = {
                        p: [
                            {
                                "value": rec["properties"][p],
                                "timestamp": rec["updatedAt"],
                                "sourceType": "API",
                            }
                        ]
                        for p in history
                        if rec["properties"].get(p) is not None
                    }
                results.append(rendered)
        errors = [objects_not_found(otype, missing)] if missing else []
        return self._batch_response(200, results, errors, started)

    def _op_batch_upsert(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        started = now_iso()
        body = self._body(req, "BatchInputSimplePublicObjectBatchInputUpsert")
        inputs = self._batch_inputs(body)
        state = self.state
        for item in inputs:
            self._id_property(otype, scalar_text(item["idProperty"]), for_upsert=True)
        self._duplicates([self._input_key(item) for item in inputs])
        multi = self._multi_status(inputs)
        good, bad = self._validate_inputs(otype, inputs)
        portal = state.config.portal_id
        if bad and (not multi or not good):
            return Response(400, property_error_body([e for _, errs in bad for e in errs], portal))
        errors = [self._input_error(item, property_error_body(errs, portal)) for item, errs in bad]
        results: list[Json] = []
        with state.lock:
            planned: list[tuple[Json, dict[str, str], Json | None]] = []
            first_conflict: Json | None = None
            for item, clean in good:
                prop = scalar_text(item["idProperty"])
                ident = scalar_text(item["id"])
                rec = state.find(otype, ident, prop)
                clean = dict(clean)
                if rec is None:  # a new record takes its idProperty value from the input id
                    clean[prop] = normalise(prop, ident)
                existing = state.unique_conflict(otype, clean, rec["id"] if rec else None)
                if existing is not None:
                    conflict = conflict_body(otype, existing)
                    if not multi:
                        return Response(409, conflict)
                    first_conflict = first_conflict or conflict
                    errors.append(self._input_error(item, conflict))
                    continue
                planned.append((item, clean, rec))
            if not planned and first_conflict is not None and not results:
                return Response(409, first_conflict)  # every input failed: no partial success
            for item, clean, found in planned:
                rec = (
                    state.create(otype, clean)
                    if found is None
                    else state.update(otype, found, clean)
                )
                # [SPEC SimplePublicUpsertObject: id, properties, createdAt, updatedAt, new, ...]
                rendered = state.render(otype, rec, None, everything=True)
                rendered["new"] = found is None
                if item.get("objectWriteTraceId"):
                    rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
                results.append(rendered)
        return self._batch_response(200, results, errors, started)

    def _op_batch_create(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        started = now_iso()
        body = self._body(req, "BatchInputSimplePublicObjectBatchInputForCreate")
        inputs = self._batch_inputs(body)
        state = self.state
        multi = self._multi_status(inputs)
        good, bad = self._validate_inputs(otype, inputs)
        portal = state.config.portal_id
        if bad and (not multi or not good):
            return Response(400, property_error_body([e for _, errs in bad for e in errs], portal))
        unique_keys = [
            f"{p}:{normalise(p, v)}"
            for _, clean in good
            for p, v in clean.items()
            if v and otype.properties.get(p, PropertyDef(p)).unique
        ]
        self._duplicates(unique_keys)
        errors = [self._input_error(item, property_error_body(errs, portal)) for item, errs in bad]
        results: list[Json] = []
        with state.lock:
            planned: list[tuple[Json, dict[str, str]]] = []
            first_conflict: Json | None = None
            for item, clean in good:
                existing = state.unique_conflict(otype, clean, None)
                if existing is not None:
                    # [CAPTURE: batch create answers the first conflicting contact with the
                    # 409 CONFLICT body, HubSpot/hubspot-api-python issue #51.]
                    conflict = conflict_body(otype, existing)
                    if not multi:
                        return Response(409, conflict)
                    first_conflict = first_conflict or conflict
                    errors.append(self._input_error(item, conflict))
                    continue
                planned.append((item, clean))
            if not planned and first_conflict is not None:
                return Response(409, first_conflict)  # every input failed: no partial success
            for item, clean in planned:
                rec = state.create(otype, clean)
                rendered = state.render(otype, rec, None, everything=True)
                if item.get("objectWriteTraceId"):
                    rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
                results.append(rendered)
        return self._batch_response(201, results, errors, started)

    def _op_batch_update(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        started = now_iso()
        body = self._body(req, "BatchInputSimplePublicObjectBatchInput")
        inputs = self._batch_inputs(body)
        state = self.state
        for item in inputs:
            self._id_property(otype, item.get("idProperty"))
        self._duplicates([self._input_key(item) for item in inputs])
        multi = self._multi_status(inputs)
        good, bad = self._validate_inputs(otype, inputs)
        portal = state.config.portal_id
        if bad and (not multi or not good):
            return Response(400, property_error_body([e for _, errs in bad for e in errs], portal))
        errors = [self._input_error(item, property_error_body(errs, portal)) for item, errs in bad]
        results: list[Json] = []
        missing: list[str] = []
        with state.lock:
            for item, clean in good:
                prop = self._id_property(otype, item.get("idProperty"))
                ident = scalar_text(item["id"])
                rec = state.find(otype, ident, prop)
                if rec is None:
                    missing.append(ident)
                    continue
                existing = state.unique_conflict(otype, clean, rec["id"])
                if existing is not None:
                    if not multi:
                        return Response(409, conflict_body(otype, existing))
                    errors.append(self._input_error(item, conflict_body(otype, existing)))
                    continue
                state.update(otype, rec, clean)
                rendered = state.render(otype, rec, None, everything=True)
                if item.get("objectWriteTraceId"):
                    rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
                results.append(rendered)
        if missing:
            errors.append(objects_not_found(otype, missing))
        return self._batch_response(200, results, errors, started)

    def _op_batch_archive(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        body = self._body(req, "BatchInputSimplePublicObjectId")
        inputs = self._batch_inputs(body)
        with self.state.lock:
            for item in inputs:
                rec = self.state.find(otype, scalar_text(item["id"]), None)
                if rec is not None:
                    self.state.archive(otype, rec)
        return Response(204)
