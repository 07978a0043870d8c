"""The fake org's modules and fields (Zoho's standard layouts of Contacts, Accounts and Leads,
a subset), and the checks Zoho makes on a record's values before it saves them.

Field API names, types and lengths from Zoho's field metadata
(``GET /crm/v8/settings/fields?module=Contacts``; https://www.zoho.com/crm/developer/docs/api/v8/field-meta.html)
and the standard layouts: Last_Name is mandatory in Contacts and Leads, Company in Leads,
Account_Name in Accounts. Formats (crm-apis.md 3.5): dates yyyy-MM-dd, datetimes ISO 8601
with an offset, multi-select picklists JSON arrays, a lookup ``{"id": ...}``. Each refusal
is the per-record error Zoho documents (texts.py). Values of fields the org does not have
are ignored, as Zoho does [unconfirmed]; the fake records them as violations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.fakes.app import Json
from connectors.fakes.zoho import texts

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
LEAD_SOURCES = (
    "-None-",
    "Advertisement",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Online Store",
    "Partner",
    "Public Relations",
    "Sales Email Alias",
    "Seminar Partner",
    "Internal Seminar",
    "Trade Show",
    "Web Download",
    "Web Research",
    "Chat",
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # text | email | phone | textarea | picklist | multiselectpicklist | date |
    #            datetime | integer | lookup | website
    length: int | None = None
    mandatory: bool = False
    values: tuple[str, ...] = ()
    lookup: str | None = None  # the module a lookup points to


@dataclass(frozen=True)
class Module:
    name: str
    fields: dict[str, Field]
    #: the system-defined duplicate check field (upsert without duplicate_check_fields)
    unique: str


def _module(name: str, unique: str, *fields: Field) -> Module:
    return Module(name, {f.name: f for f in fields}, unique)


MODULES = {
    m.name: m
    for m in (
        _module(
            "Contacts",
            "Email",
            Field("First_Name", "text", 40),
            Field("Last_Name", "text", 80, mandatory=True),
            Field("Email", "email", 100),
            Field("Secondary_Email", "email", 100),
            Field("Phone", "phone", 30),
            Field("Mobile", "phone", 30),
            Field("Title", "text", 100),
            Field("Department", "text", 30),
            Field("Lead_Source", "picklist", values=LEAD_SOURCES),
            Field("Account_Name", "lookup", lookup="Accounts"),
            Field("Mailing_City", "text", 30),
            Field("Mailing_Country", "text", 30),
            Field("Date_of_Birth", "date"),
            Field("Description", "textarea", 32000),
            Field("Tag", "multiselectpicklist"),
        ),
        _module(
            "Accounts",
            "Account_Name",
            Field("Account_Name", "text", 200, mandatory=True),
            Field("Website", "website", 255),
            Field("Phone", "phone", 30),
            Field("Industry", "text", 120),
            Field("Employees", "integer"),
            Field("Billing_City", "text", 30),
            Field("Description", "textarea", 32000),
        ),
        _module(
            "Leads",
            "Email",
            Field("First_Name", "text", 40),
            Field("Last_Name", "text", 80, mandatory=True),
            Field("Company", "text", 200, mandatory=True),
            Field("Email", "email", 100),
            Field("Phone", "phone", 30),
            Field("Title", "text", 100),
            Field("Lead_Source", "picklist", values=LEAD_SOURCES),
            Field("Description", "textarea", 32000),
        ),
    )
}

#: read-only system fields a write may not set (API names starting with $ too)
SYSTEM = frozenset({"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Owner"})


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_values(
    module: Module,
    values: Json,
    index: int,
    creating: bool,
    current: Json | None,
    lookup_exists: Callable[[str, str], bool],
) -> tuple[Json, Json | None, list[str]]:
    """(the values to save, the record's error or None, names of fields the org does not
    have). ``current``: the stored record an update changes."""
    clean: Json = {}
    unknown: list[str] = []
    for name, value in values.items():
        if name in SYSTEM or name.startswith("$"):
            continue
        field = module.fields.get(name)
        if field is None:
            unknown.append(name)
            continue
        if value is None:
            clean[name] = None
            continue
        problem = _check(field, value, index, lookup_exists)
        if problem is not None:
            return {}, problem, unknown
        clean[name] = _stored(field, value)
    merged = {**(current or {}), **clean}
    for field in module.fields.values():
        if field.mandatory and (creating or field.name in clean) and empty(merged.get(field.name)):
            return {}, texts.mandatory_not_found(field.name, index), unknown
    return clean, None, unknown


def _check(
    field: Field, value: Any, index: int, lookup_exists: Callable[[str, str], bool]
) -> Json | None:
    kind = field.type
    if kind == "lookup":
        ident = value.get("id") if isinstance(value, dict) else value
        if not isinstance(ident, str | int) or not lookup_exists(str(field.lookup), str(ident)):
            return texts.invalid_id(field.name, index)
        return None
    if kind == "multiselectpicklist":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else texts.invalid_data(field.name, index, expected_data_type="jsonarray")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else texts.invalid_data(field.name, index, expected_data_type="integer")
    if not isinstance(value, str):
        return texts.invalid_data(field.name, index, expected_data_type=kind)
    if field.length is not None and len(value) > field.length:
        return texts.invalid_data(field.name, index, maximum_length=field.length)
    if kind == "email" and not _EMAIL.match(value):
        return texts.invalid_data(field.name, index, expected_data_type="email")
    if kind == "date" and not _DATE.match(value):
        return texts.invalid_data(field.name, index, expected_data_type="date")
    if kind == "datetime" and not _DATETIME.match(value):
        return texts.invalid_data(field.name, index, expected_data_type="datetime")
    if kind == "picklist" and field.values and value not in field.values:
        return texts.invalid_data(field.name, index, supported_values=list(field.values))
    return None


def _stored(field: Field, value: Any) -> Any:
    if field.type == "lookup":
        return {"id": str(value.get("id") if isinstance(value, dict) else value)}
    return value
