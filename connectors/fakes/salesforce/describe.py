"""The describe-like schemas (``schemas.json``) and the checks every write goes through:
unknown or read-only fields, types, lengths, restricted picklists, required fields, references,
each failing with Salesforce's errorCode and message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.fakes.salesforce.texts import SfError, no_such_column, required_missing

SCHEMA_FILE = Path(__file__).with_name("schemas.json")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
# https://developer.salesforce.com/docs/atlas.en-us.264.0.api_rest.meta/api_rest/intro_valid_date_formats.htm
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    length: int | None
    nillable: bool
    createable: bool
    updateable: bool
    defaulted: bool
    external_id: bool
    unique: bool
    restricted: bool
    picklist: tuple[str, ...]
    reference_to: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted


@dataclass(frozen=True)
class SObject:
    name: str
    key_prefix: str
    fields: dict[str, Field]  # by lower-cased name: the API takes any case

    def field(self, name: str) -> Field | None:
        return self.fields.get(name.lower())


@dataclass(frozen=True)
class Schemas:
    objects: dict[str, SObject]  # by lower-cased name
    duplicate_rules: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, path: Path = SCHEMA_FILE) -> Schemas:
        data = json.loads(path.read_text())
        objects = {}
        for name, spec in data["objects"].items():
            fields = {
                f["name"].lower(): Field(
                    name=f["name"],
                    label=f.get("label", f["name"]),
                    type=f["type"],
                    length=f.get("length"),
                    nillable=f.get("nillable", True),
                    createable=f.get("createable", True),
                    updateable=f.get("updateable", True),
                    defaulted=f.get("defaultedOnCreate", False),
                    external_id=f.get("externalId", False),
                    unique=f.get("unique", False),
                    restricted=f.get("restrictedPicklist", False),
                    picklist=tuple(v["value"] for v in f.get("picklistValues", [])),
                    reference_to=tuple(f.get("referenceTo", [])),
                )
                for f in spec["fields"]
            }
            objects[name.lower()] = SObject(name, spec["keyPrefix"], fields)
        return cls(objects, tuple(data.get("duplicateRules", [])))

    def sobject(self, name: str) -> SObject | None:
        return self.objects.get(name.lower())


def _type_problem(field: Field, value: Any) -> SfError | None:
    kind = field.type
    name = field.name
    if kind in ("string", "email", "phone", "url", "picklist", "multipicklist", "textarea"):
        if not isinstance(value, str):
            return SfError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of string from {type(value).__name__} value "
                f"{value!r} or request may be missing a required field",
                [name],
            )
        if field.length is not None and len(value) > field.length:
            # [observed] "First Name: data value too large: ... (max length=40)"
            return SfError(
                "STRING_TOO_LONG",
                f"{field.label}: data value too large: {value} (max length={field.length})",
                [name],
            )
        if kind == "email" and not _EMAIL.match(value):
            return SfError(
                "INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {value}", [name]
            )
        if kind in ("picklist", "multipicklist") and field.restricted:
            chosen = value.split(";") if kind == "multipicklist" else [value]
            for item in chosen:
                if item not in field.picklist:
                    # [observed] "Job Category: bad value for restricted picklist field: X"
                    return SfError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{field.label}: bad value for restricted picklist field: {item}",
                        [name],
                    )
        return None
    if kind == "reference":
        if not isinstance(value, str) or not _ID.match(value):
            return SfError(
                "MALFORMED_ID", f"{field.label}: id value of incorrect type: {value}", [name]
            )
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return SfError(
                "JSON_PARSER_ERROR", f"Cannot deserialize instance of int from {value!r}", [name]
            )
        return None
    if kind in ("double", "currency", "percent"):
        # a Number field: a JSON number ("Lead Score: value not of required type: abc" for
        # text; https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return SfError(
                "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from {value!r}", [name]
            )
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            return SfError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of boolean from {value!r}",
                [name],
            )
        return None
    if kind == "date":
        try:
            ok = isinstance(value, str) and bool(date.fromisoformat(value)) and len(value) == 10
        except ValueError:
            ok = False
        if not ok:
            return SfError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of date from VALUE_STRING value {value} or "
                "request may be missing a required field",
                [name],
            )
        return None
    if kind == "datetime":
        ok = isinstance(value, str) and bool(_DATETIME.match(value))
        if ok:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                ok = False
        if not ok:
            return SfError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of datetime from VALUE_STRING value {value} or "
                "request may be missing a required field",
                [name],
            )
    return None


def check_write(
    sobject: SObject, values: dict[str, Any], *, creating: bool, allowed: tuple[str, ...] = ()
) -> tuple[dict[str, Any], SfError | None]:
    """The values under their canonical names, or the first error Salesforce would answer.
    `allowed`: fields given outside the body that may appear (the upsert's external id)."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        field = sobject.field(key)
        if field is None:
            return {}, no_such_column(key, sobject.name)
        if not (field.createable if creating else field.updateable) and key not in allowed:
            return {}, SfError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {field.name}. Please check the security "
                "settings of this field and verify that it is read/write for your profile "
                "or permission set.",
                [field.name],
            )
        if value is not None:
            problem = _type_problem(field, value)
            if problem is not None:
                return {}, problem
        clean[field.name] = value
    missing = [
        f.name
        for f in sobject.fields.values()
        if f.required and (creating and clean.get(f.name) in (None, ""))
    ]
    missing += [
        f.name
        for f in sobject.fields.values()
        if not creating and f.required and f.name in clean and clean[f.name] in (None, "")
    ]
    if missing:
        return {}, required_missing(missing)
    return clean, None
