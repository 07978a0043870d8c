"""The single-object operations: create, list, get, update (PATCH), archive."""

from __future__ import annotations

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.hubspot.checks import Checks, int_param
from connectors.fakes.hubspot.properties import ObjectType, check_properties
from connectors.fakes.hubspot.texts import (
    conflict_body,
    non_numeric_id,
    not_found_body,
    property_error_body,
)


class ObjectOps(Checks):
    def _op_create(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        body = self._body(req, "SimplePublicObjectInputForCreate")
        state = self.state
        clean, errors = check_properties(otype, body["properties"])
        if errors:
            return Response(400, property_error_body(errors, state.config.portal_id))
        with state.lock:
            existing = state.unique_conflict(otype, clean, None)
            if existing is not None:
                return Response(409, conflict_body(otype, existing))
            rec = state.create(otype, clean)
            rendered = state.render(otype, rec, None, everything=True)
        # 201 Created with a Location header [per HubSpot's create-contact reference, 201; the
        # spec's CreatedResponseSimplePublicObject is the entity plus Location on the wire].
        location = f"{self.base_url}/crm/v3/objects/{otype.name}/{rec['id']}"
        return Response(201, rendered, {"Location": location})

    def _op_list(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        limit = int_param(req.param("limit"), 10)
        limit = max(1, min(limit, 100))
        after = int_param(req.param("after"), 0)
        requested = req.param_list("properties")
        with self.state.lock:
            table = self.state.records[otype.name]
            ids = sorted(int(i) for i in table if int(i) > after)
            page = ids[:limit]
            results = [self.state.render(otype, table[str(i)], requested) for i in page]
        body: Json = {"results": results}
        if len(ids) > limit:
            nxt = str(page[-1])
            body["paging"] = {
                "next": {
                    "after": nxt,
                    "link": f"{self.base_url}/crm/v3/objects/{otype.name}?after={nxt}",
                }
            }
        return Response(200, body)

    def _op_get(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        ident = rest[0]
        id_property = self._id_property(otype, req.param("idProperty"))
        requested = req.param_list("properties")
        with self.state.lock:
            if id_property is None and not ident.isdigit():
                return Response(404, non_numeric_id(ident))
            rec = self.state.find(otype, ident, id_property)
            if rec is None:
                return Response(404, not_found_body())
            return Response(200, self.state.render(otype, rec, requested))

    def _op_update(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        ident = rest[0]
        id_property = self._id_property(otype, req.param("idProperty"))
        body = self._body(req, "SimplePublicObjectInput")
        state = self.state
        clean, errors = check_properties(otype, body["properties"])
        with state.lock:
            if id_property is None and not ident.isdigit():
                return Response(404, non_numeric_id(ident))
            rec = state.find(otype, ident, id_property)
            if rec is None:
                return Response(404, not_found_body())
            if errors:
                return Response(400, property_error_body(errors, state.config.portal_id))
            existing = state.unique_conflict(otype, clean, rec["id"])
            if existing is not None:
                return Response(409, conflict_body(otype, existing))
            state.update(otype, rec, clean)
            return Response(200, state.render(otype, rec, None, everything=True))

    def _op_archive(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        ident = rest[0]
        with self.state.lock:
            rec = self.state.find(otype, ident, None)
            if rec is not None:
                self.state.archive(otype, rec)
        return Response(204)
