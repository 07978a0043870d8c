"""Requests checked against Zoho's official OpenAPI documents (``spec/``, trimmed from
zoho/crm-oas v8.0: see spec/SOURCE.md): the operation exists for the method and path, the
query names only parameters the operation declares (with their types), and a JSON body fits
the operation's request schema. Standard library only: the subset of OpenAPI 3.0 schemas the
documents use (type, properties, items, enum, required, additionalProperties, oneOf, $ref
across files)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).with_name("spec")
_REMOTE = re.compile(
    r"^https://raw\.githubusercontent\.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8\.0/"
    r"(\w+)\.json$"
)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Operation:
    name: str  # the document's operationId ("Upsert Records")
    template: str
    method: str
    parameters: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None  # the JSON request schema
    body_required: bool


class Spec:
    """The documents, with their $refs resolvable."""

    def __init__(self, directory: Path = SPEC_DIR) -> None:
        self.documents = {
            path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")
        }
        self.operations: list[tuple[re.Pattern[str], Operation]] = []
        paths = self.documents["record"]["paths"]
        # literal segments first: /upsert and /search are not record ids
        for template in sorted(paths, key=lambda t: (t.count("{"), -len(t))):
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "/?$")
            for method, item in paths[template].items():
                content = (item.get("requestBody") or {}).get("content") or {}
                schema = (content.get("application/json") or {}).get("schema")
                params = tuple(self.resolve("record", p)[1] for p in item.get("parameters", []))
                self.operations.append(
                    (
                        pattern,
                        Operation(
                            item.get("operationId", ""),
                            template,
                            method.upper(),
                            params,
                            schema,
                            bool((item.get("requestBody") or {}).get("required")),
                        ),
                    )
                )

    def resolve(self, document: str, node: Any) -> tuple[str, Any]:
        """(the document the node lives in, the node with its $ref followed); a reference
        to a document not saved resolves to an empty schema (anything goes)."""
        while isinstance(node, dict) and "$ref" in node:
            ref = str(node["$ref"])
            where, _, pointer = ref.partition("#")
            if where:
                match = _REMOTE.match(where)
                document = match.group(1) if match else where
            target: Any = self.documents.get(document)
            for part in pointer.strip("/").split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                return document, {}
            node = target
        return document, node

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, op in self.operations:
            if op.method == method and pattern.match(path):
                return op
        return None

    def check(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> list[str]:
        """What Zoho's documents say is wrong with this request (empty: nothing)."""
        op = self.operation(method, path)
        if op is None:
            return [f"no operation {method} {path} in Zoho's record API"]
        problems: list[str] = []
        declared = {p["name"]: p for p in op.parameters if p.get("in") == "query"}
        for name, values in query.items():
            param = declared.get(name)
            if param is None:
                problems.append(f"{op.name}: query parameter {name!r} is not one Zoho declares")
                continue
            if (param.get("schema") or {}).get("type") == "integer" and not all(
                v.lstrip("-").isdigit() for v in values
            ):
                problems.append(f"{op.name}: query parameter {name!r} must be an integer")
        for name, param in declared.items():
            if param.get("required") and name not in query:
                problems.append(f"{op.name}: query parameter {name!r} is required")
        if op.body is None:
            if body is not None:
                problems.append(f"{op.name}: takes no body")
        elif body is None:
            if op.body_required:
                problems.append(f"{op.name}: a JSON body is required")
        else:
            problems += [f"{op.name}: {p}" for p in self.validate("record", op.body, body, "$")]
        return problems

    def validate(self, document: str, schema: Any, value: Any, where: str) -> list[str]:
        document, schema = self.resolve(document, schema)
        if not isinstance(schema, dict) or not schema:
            return []
        if "oneOf" in schema:
            tried = [self.validate(document, s, value, where) for s in schema["oneOf"]]
            return [] if any(not t for t in tried) else tried[0]
        kind = schema.get("type")
        if kind in _TYPES:
            ok = isinstance(value, _TYPES[kind]) and not (
                kind in ("integer", "number") and isinstance(value, bool)
            )
            if not ok:
                return [f"{where}: expected {kind}, got {type(value).__name__}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
        problems: list[str] = []
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            for name in schema.get("required") or []:
                if name not in value:
                    problems.append(f"{where}.{name}: required")
            extra = schema.get("additionalProperties", True)
            for name, item in value.items():
                if name in properties:
                    problems += self.validate(document, properties[name], item, f"{where}.{name}")
                elif extra is False:
                    problems.append(f"{where}.{name}: not a property Zoho declares")
                elif isinstance(extra, dict):
                    problems += self.validate(document, extra, item, f"{where}.{name}")
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                problems += self.validate(document, schema["items"], item, f"{where}[{index}]")
        return problems


@lru_cache(maxsize=1)
def spec() -> Spec:
    return Spec()
