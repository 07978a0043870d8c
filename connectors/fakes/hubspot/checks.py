"""What every operation checks before it runs, HubSpot's way: the body against its schema
(and Content-Type), batch sizes, duplicate ids, ``idProperty``; and the shape of batch answers
(multi-status with ``objectWriteTraceId``)."""

from __future__ import annotations

import json

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.hubspot.properties import ObjectType, PropError, check_properties
from connectors.fakes.hubspot.records import normalise
from connectors.fakes.hubspot.schemas import problems_response, scalar_text
from connectors.fakes.hubspot.state import State
from connectors.fakes.hubspot.texts import API_BASE, BATCH_LIMIT_MESSAGE, hs_error, now_iso


class Rejected(Exception):
    """An API request answered early (schema violation, bad idProperty...)."""

    def __init__(self, response: Response, problems: list[Json] | None = None) -> None:
        super().__init__(str(response.status))
        self.response = response
        self.problems = problems  # not None: record as a contract violation


def int_param(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


class Checks:
    """The checks and answer shapes the operations share."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.book = state.book
        self.base_url = API_BASE

    def _body(self, req: Request, schema: str) -> Json:
        """The JSON body, checked against the named schema; raises Rejected on a violation."""
        if req.content_type != "application/json":
            raise Rejected(
                Response(415, hs_error("HTTP 415 Unsupported Media Type")),
                [
                    {
                        "path": "$",
                        "problem": "content-type",
                        "got": req.content_type or None,
                        "expected": "application/json",
                    }
                ],
            )
        if not req.raw.strip():
            raise Rejected(
                Response(
                    400,
                    hs_error(
                        "Invalid input JSON on line 1, column 1: "
                        "No content to map due to end-of-input"
                    ),
                ),
                [{"path": "$", "problem": "empty body"}],
            )
        try:
            value = json.loads(req.raw)
        except UnicodeDecodeError:
            raise Rejected(
                Response(400, hs_error("Invalid input JSON on line 1, column 1: Invalid UTF-8")),
                [{"path": "$", "problem": "not UTF-8"}],
            ) from None
        except json.JSONDecodeError as exc:
            # [CAPTURE: "Invalid input JSON on line 1, column 2: Unexpected character ('%' (code
            # 37)): expected a valid value ...", no category (a HubSpot community question).]
            raise Rejected(
                Response(
                    400,
                    hs_error(
                        f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
                    ),
                ),
                [{"path": "$", "problem": "invalid JSON", "message": exc.msg}],
            ) from None
        problems = self.book.validate(schema, value)
        if problems:
            raise Rejected(problems_response(problems), problems)
        assert isinstance(value, dict)
        return value

    def _batch_inputs(self, body: Json) -> list[Json]:
        inputs: list[Json] = body["inputs"]
        limit = self.book.max_batch
        if len(inputs) > limit:
            raise Rejected(
                Response(
                    400,
                    hs_error(BATCH_LIMIT_MESSAGE.format(limit=limit), category="VALIDATION_ERROR"),
                ),
                [
                    {
                        "path": "$.inputs",
                        "problem": "too many inputs",
                        "count": len(inputs),
                        "max": limit,
                    }
                ],
            )
        return inputs

    def _id_property(
        self, otype: ObjectType, name: str | None, *, for_upsert: bool = False
    ) -> str | None:
        """Check idProperty: absent/hs_object_id (record ids) or a property with unique values."""
        if name is None or (name == "hs_object_id" and not for_upsert):
            return None
        pdef = otype.properties.get(name)
        if pdef is None or not pdef.unique:
            # The text is the fake's own: HubSpot requires idProperty to name a property with
            # unique values (email for contacts, or a custom hasUniqueValue property).
            raise Rejected(
                Response(
                    400,
                    hs_error(
                        f'Property "{name}" is not a unique identifier property of {otype.name}',
                        category="VALIDATION_ERROR",
                    ),
                ),
                [{"path": "idProperty", "problem": "not a unique property", "idProperty": name}],
            )
        return name

    def _duplicates(self, keys: list[str]) -> None:
        """[CAPTURE: 400 {"status":"error","message":"Duplicate IDs found in batch input:
        [12877907025]. IDs must be unique","correlationId":...,"context":{"ids":["12877907025"]},
        "category":"VALIDATION_ERROR"} (rudderlabs/rudder-transformer test data).]"""
        seen: set[str] = set()
        dupes: list[str] = []
        for key in keys:
            if key in seen and key not in dupes:
                dupes.append(key)
            seen.add(key)
        if dupes:
            raise Rejected(
                Response(
                    400,
                    hs_error(
                        f"Duplicate IDs found in batch input: [{', '.join(dupes)}]. "
                        "IDs must be unique",
                        context={"ids": dupes},
                        category="VALIDATION_ERROR",
                    ),
                ),
                [{"path": "$.inputs", "problem": "duplicate ids", "ids": dupes}],
            )

    def _batch_response(
        self, status: int, results: list[Json], errors: list[Json], started: str
    ) -> Response:
        """[SPEC BatchResponseSimplePublicObject / BatchResponseSimplePublicUpsertObject];
        207 when some inputs failed [ERRORS "207 Multi-Status"]."""
        body: Json = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            status = 207
        body["startedAt"] = started
        body["completedAt"] = now_iso()
        return Response(status, body)

    @staticmethod
    def _multi_status(inputs: list[Json]) -> bool:
        """Partial success only when every input has its own objectWriteTraceId [ERRORS
        "Multi-status errors": "include a unique objectWriteTraceId value for each input"]."""
        traces = [i.get("objectWriteTraceId") for i in inputs]
        return (
            bool(traces)
            and all(isinstance(t, str) and t for t in traces)
            and len(set(traces)) == len(traces)
        )

    def _validate_inputs(
        self, otype: ObjectType, inputs: list[Json]
    ) -> tuple[list[tuple[Json, dict[str, str]]], list[tuple[Json, list[PropError]]]]:
        good: list[tuple[Json, dict[str, str]]] = []
        bad: list[tuple[Json, list[PropError]]] = []
        for item in inputs:
            clean, errors = check_properties(otype, item["properties"])
            if errors:
                bad.append((item, errors))
            else:
                good.append((item, clean))
        return good, bad

    def _input_error(self, item: Json, body: Json) -> Json:
        """A per-input error of a multi-status answer [ERRORS "Multi-status errors"; SPEC
        StandardError], tied to its input by context.objectWriteTraceId."""
        entry: Json = {
            "status": "error",
            "category": body.get("category", "VALIDATION_ERROR"),
            "message": body["message"],
        }
        if body.get("errors"):
            entry["errors"] = body["errors"]
        entry["context"] = {"objectWriteTraceId": [item["objectWriteTraceId"]]}
        return entry

    @staticmethod
    def _input_key(item: Json) -> str:
        """What makes two batch inputs the same record: idProperty and its normalised value."""
        prop = scalar_text(item.get("idProperty")) or "hs_object_id"
        return f"{normalise(prop, scalar_text(item['id']))}"
