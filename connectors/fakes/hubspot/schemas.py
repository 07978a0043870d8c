"""HubSpot's official request schemas (``schemas.json`` beside this file, extracted from
HubSpot's OpenAPI specs, with the source and each deliberate deviation documented there) and a
validator for the subset of JSON Schema they use; a body that does not fit is answered with
HubSpot's Jackson/Immutables texts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from connectors.fakes.app import Json, Response
from connectors.fakes.hubspot.texts import hs_error

SCHEMA_FILE = Path(__file__).with_name("schemas.json")
MAX_BATCH_INPUTS = 100  # schemas.json x-crmhub-overrides.maxBatchInputs


JAVA_TYPES = {
    "string": "java.lang.String",
    "integer": "java.lang.Integer",
    "boolean": "java.lang.Boolean",
    "array": "java.util.ArrayList",
}


def _json_kind(value: Any) -> tuple[str, str]:
    """(Jackson's name for the value, its token) for type-mismatch messages."""
    if isinstance(value, dict):
        return "Object", "START_OBJECT"
    if isinstance(value, list):
        return "Array", "START_ARRAY"
    if isinstance(value, bool):
        return "Boolean", "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "Integer", "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "Floating-point", "VALUE_NUMBER_FLOAT"
    if value is None:
        return "Null", "VALUE_NULL"
    return "String", "VALUE_STRING"


class SchemaBook:
    """The request schemas of schemas.json and a validator for the subset of JSON Schema
    they use ($ref, type, required, properties, additionalProperties, items, enum, anyOf).

    Scalars are coerced the way HubSpot's Jackson parser coerces them (see the file's
    x-crmhub-overrides.scalarCoercion): numbers and booleans are fine where a string is expected.
    """

    def __init__(self, document: Json) -> None:
        self.document = document
        self.schemas: dict[str, Json] = document["components"]["schemas"]
        overrides = document.get("x-crmhub-overrides", {})
        self.max_batch = int(overrides.get("maxBatchInputs", {}).get("value", MAX_BATCH_INPUTS))
        self.not_required: dict[str, set[str]] = {}
        for item in overrides.get("notRequired", []):
            self.not_required.setdefault(item["schema"], set()).add(item["property"])
        self.also_required: dict[str, set[str]] = {}
        for item in overrides.get("alsoRequired", []):
            self.also_required.setdefault(item["schema"], set()).add(item["property"])
        self.alternatives: dict[tuple[str, str], Json] = {
            (item["schema"], item["property"]): item["accept"]
            for item in overrides.get("alternatives", [])
        }
        self.catalogue: Json = document.get("propertyCatalogue", {})

    @classmethod
    def load(cls, path: Path = SCHEMA_FILE) -> SchemaBook:
        with path.open(encoding="utf-8") as handle:
            return cls(json.load(handle))

    def validate(self, name: str, value: Any) -> list[Json]:
        problems: list[Json] = []
        self._check({"$ref": f"#/components/schemas/{name}"}, value, "$", None, problems)
        return problems

    def _check(
        self, schema: Json, value: Any, path: str, owner: str | None, problems: list[Json]
    ) -> None:
        if "$ref" in schema:
            owner = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.schemas[owner]
        if "anyOf" in schema:
            for option in schema["anyOf"]:
                attempt: list[Json] = []
                self._check(option, value, path, owner, attempt)
                if not attempt:
                    return
            problems.append(
                {
                    "path": path,
                    "problem": "type",
                    "expected": "one of the allowed forms",
                    "got": _json_kind(value)[0],
                    "java": owner or "value",
                }
            )
            return
        kind = schema.get("type")
        if kind == "object" or (kind is None and "properties" in schema):
            if not isinstance(value, dict):
                got, token = _json_kind(value)
                problems.append(
                    {
                        "path": path,
                        "problem": "type",
                        "expected": "object",
                        "got": got,
                        "token": token,
                        "java": owner or "java.util.LinkedHashMap",
                    }
                )
                return
            required = set(schema.get("required", []))
            if owner is not None:
                required -= self.not_required.get(owner, set())
                required |= self.also_required.get(owner, set())
            missing = sorted(name for name in required if value.get(name) is None)
            if missing:
                problems.append({"path": path, "problem": "required", "fields": missing})
            props: Json = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if item is None:
                    continue
                sub = f"{path}.{key}"
                if key in props:
                    alternative = self.alternatives.get((owner or "", key))
                    self._check(alternative or props[key], item, sub, None, problems)
                elif isinstance(extra, dict):
                    self._check(extra, item, sub, None, problems)
            return
        if kind == "array":
            if not isinstance(value, list):
                got, token = _json_kind(value)
                problems.append(
                    {
                        "path": path,
                        "problem": "type",
                        "expected": "array",
                        "got": got,
                        "token": token,
                        "java": JAVA_TYPES["array"],
                    }
                )
                return
            items = schema.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(value):
                    if item is not None:
                        self._check(items, item, f"{path}[{index}]", None, problems)
            return
        if kind in ("string", "integer", "boolean"):
            ok = (
                (kind == "string" and isinstance(value, str | int | float))
                or (kind == "integer" and _is_integer(value))
                or (kind == "boolean" and (isinstance(value, bool) or value in ("true", "false")))
            )
            if not ok:
                got, token = _json_kind(value)
                problems.append(
                    {
                        "path": path,
                        "problem": "type",
                        "expected": kind,
                        "got": got,
                        "token": token,
                        "java": JAVA_TYPES[kind],
                    }
                )
                return
            enum = schema.get("enum")
            if enum is not None and scalar_text(value) not in enum:
                problems.append(
                    {
                        "path": path,
                        "problem": "enum",
                        "value": scalar_text(value),
                        "allowed": list(enum),
                    }
                )


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()) is not None


def scalar_text(value: Any) -> str:
    """A JSON scalar as the text HubSpot stores (Jackson's coercion: true -> "true", 5 -> "5")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def _enum_class(path: str) -> str:
    """Jackson names the enum class; the fake names it after the field (``operator`` ->
    ``Operator``)."""
    field_name = re.split(r"[.\[]", path)[-1] or "value"
    return field_name[:1].upper() + field_name[1:]


def problems_response(problems: list[Json]) -> Response:
    """HubSpot's answer to a body that does not fit the schema: Jackson/Immutables texts.

    [CAPTURE missing field: "Invalid input JSON on line 1, column 2. Some required fields were not
    set: [path]" with category VALIDATION_ERROR (HubSpot cms/files endpoints, quoted in public
    API probes; a contacts-era example with "[eventName]" in a public test suite).]
    [CAPTURE wrong type: "Invalid input JSON on line 3, column 9: Cannot deserialize value of type
    `...SimplePublicObjectBatchInput$Json` from Array value (token `JsonToken.START_ARRAY`)",
    no category (rudderlabs/rudder-transformer test data).] Line and column are not computed:
    the fake always reports line 1, column 2.
    """
    first = problems[0]
    where = "line 1, column 2"
    if first["problem"] == "required":
        fields = ", ".join(first["fields"])
        return Response(
            400,
            hs_error(
                f"Invalid input JSON on {where}. Some required fields were not set: [{fields}]",
                category="VALIDATION_ERROR",
            ),
        )
    if first["problem"] == "enum":
        allowed = ", ".join(first["allowed"])
        return Response(
            400,
            hs_error(
                f"Invalid input JSON on {where}: Cannot deserialize value of type "
                f"`{_enum_class(first['path'])}` "
                f'from String "{first["value"]}": not one of the values accepted for Enum class: '
                f"[{allowed}]"
            ),
        )
    if first["problem"] == "type":
        token = first.get("token", "VALUE_STRING")
        return Response(
            400,
            hs_error(
                f"Invalid input JSON on {where}: Cannot deserialize value of type "
                f"`{first['java']}` from {first['got']} value (token `JsonToken.{token}`)"
            ),
        )
    return Response(
        400, hs_error(first.get("message", "Invalid input"), category="VALIDATION_ERROR")
    )
