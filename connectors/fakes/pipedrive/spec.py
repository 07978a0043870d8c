"""Pipedrive's API v2 as its official OpenAPI document describes it (``spec/pipedrive-v2.json``,
an extract; its source and licence in ``spec/README.md``), and a validator for the subset of
JSON Schema it uses (type, nullable, enum, properties, additionalProperties, items, required,
allOf).

v2 validates strictly: booleans are only true/false, numbers are not coerced from strings
(https://pipedrive.readme.io/docs/pipedrive-api-v2-migration-guide). A property the document
does not list is refused too [unconfirmed: the fake's reading of "stricter validation"]."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).with_name("spec") / "pipedrive-v2.json"
Json = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    key: str  # "POST /persons"
    operation_id: str
    token_cost: int
    parameters: tuple[Json, ...]
    body: Json | None
    answer: Json


@lru_cache(maxsize=2)
def load(path: Path = SPEC_FILE) -> dict[str, Operation]:
    document = json.loads(path.read_text())
    return {
        key: Operation(
            key,
            op["operationId"],
            int(op.get("x-token-cost") or 1),
            tuple(op.get("parameters") or ()),
            op.get("requestBody"),
            op["response200"],
        )
        for key, op in document["operations"].items()
    }


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def problems(
    schema: Json, value: Any, path: str = "", *, strict: bool = True
) -> list[tuple[str, str]]:
    """(path, problem) for each way `value` breaks `schema`. `strict`: a property the
    schema does not list is a problem (requests), unless additionalProperties allows it."""
    if "allOf" in schema:
        found: list[tuple[str, str]] = []
        merged: Json = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(part.get("properties") or {})
        return found + problems(merged, value, path, strict=strict)
    if value is None:
        # answers carry null for what is not set; a request must say nullable
        ok = schema.get("nullable") or "type" not in schema or not strict
        return [] if ok else [(path, "must not be null")]
    wanted = schema.get("type")
    kind = _kind(value)
    if wanted == "number" and kind == "integer":
        kind = "number"
    if wanted is not None and kind != wanted:
        return [(path, f"Expected {wanted}, received {kind}")]
    if "enum" in schema and value not in schema["enum"]:
        return [(path, f"must be one of {', '.join(map(str, schema['enum']))}")]
    out: list[tuple[str, str]] = []
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            out += problems(schema["items"], item, f"{path}[{index}]", strict=strict)
    if kind == "object":
        listed = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name in schema.get("required") or ():
            if name not in value:
                out.append((_join(path, name), "is required"))
        for name, item in value.items():
            where = _join(path, name)
            if name in listed:
                out += problems(listed[name], item, where, strict=strict)
            elif isinstance(extra, dict):
                out += problems(extra, item, where, strict=strict)
            elif strict and listed and extra is not True:
                out.append((where, "is not a field of this object"))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parameter_problems(operation: Operation, query: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Query parameters against the operation's: required ones present, types and enums."""
    out: list[tuple[str, str]] = []
    for param in operation.parameters:
        if param.get("in") != "query":
            continue
        name, schema = param["name"], param.get("schema") or {}
        values = query.get(name)
        if not values:
            if param.get("required"):
                out.append((name, "is required"))
            continue
        raw = values[-1]
        kind = schema.get("type")
        if kind == "integer" and not raw.lstrip("-").isdigit():
            out.append((name, f"Expected integer, received {raw!r}"))
        elif kind == "boolean" and raw not in ("true", "false"):
            out.append((name, f"Expected boolean (true or false), received {raw!r}"))
        elif "enum" in schema and raw not in schema["enum"]:
            out.append((name, f"must be one of {', '.join(schema['enum'])}"))
    return out
