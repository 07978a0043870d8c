"""The objects and their properties (contacts, companies, and ``--custom-property``), and the
checking of property values the way HubSpot checks them (options, dates, numbers, emails,
read-only properties)."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

from connectors.fakes.app import Json
from connectors.fakes.hubspot.schemas import SchemaBook, scalar_text

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class PropertyDef:
    name: str
    type: str = "string"
    options: tuple[tuple[str, str], ...] = ()
    unique: bool = False
    read_only: bool = False
    format: str | None = None


@dataclass(frozen=True)
class ObjectType:
    name: str  # "contacts"
    singular: str  # "CONTACT" as in OBJECT_NOT_FOUND texts
    label: str  # "Contact" as in the 409 text
    properties: dict[str, PropertyDef]
    defaults: tuple[str, ...]  # properties returned when none are asked for
    last_modified: str  # contacts: lastmodifieddate, companies: hs_lastmodifieddate
    searchable: tuple[str, ...]


def build_object_types(book: SchemaBook, custom: list[str]) -> dict[str, ObjectType]:
    """Contacts and companies from the catalogue in schemas.json plus --custom-property.

    Default properties returned by GET and search when none are requested follow HubSpot's search
    guide table (contacts: createdate, email, firstname, hs_object_id, lastmodifieddate,
    lastname; companies: domain, createdate, name, hs_lastmodifieddate, hs_object_id),
    https://developers.hubspot.com/docs/api-reference/legacy/crm/search-the-crm.
    """
    catalogue = book.catalogue
    defs: dict[str, dict[str, PropertyDef]] = {}
    for obj in ("contacts", "companies", "deals"):
        defs[obj] = {}
        for name, spec in catalogue.get(obj, {}).items():
            defs[obj][name] = PropertyDef(
                name=name,
                type=spec.get("type", "string"),
                options=tuple((str(v), str(label)) for v, label in spec.get("options", [])),
                unique=bool(spec.get("unique", False)),
                read_only=bool(spec.get("readOnly", False)),
                format=spec.get("format"),
            )
    for item in custom:
        parts = item.split(":")
        if len(parts) < 2 or parts[0] not in defs or not parts[1]:
            raise ValueError(f"--custom-property {item!r}: expected OBJECT:NAME[:TYPE][:unique]")
        kind = parts[2] if len(parts) > 2 and parts[2] else "string"
        if kind not in ("string", "number", "date", "datetime", "bool"):
            raise ValueError(f"--custom-property {item!r}: unknown type {kind!r}")
        defs[parts[0]][parts[1]] = PropertyDef(
            name=parts[1], type=kind, unique="unique" in parts[3:]
        )
    return {
        "contacts": ObjectType(
            "contacts",
            "CONTACT",
            "Contact",
            defs["contacts"],
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            "lastmodifieddate",
            ("firstname", "lastname", "email", "phone", "mobilephone", "company"),
        ),
        "companies": ObjectType(
            "companies",
            "COMPANY",
            "Company",
            defs["companies"],
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            "hs_lastmodifieddate",
            ("name", "domain", "website", "phone"),
        ),
        # deals: the default properties returned are HubSpot's for deals in the search guide's
        # table (dealname, amount, closedate, pipeline, dealstage, createdate,
        # hs_lastmodifieddate, hs_object_id)
        "deals": ObjectType(
            "deals",
            "DEAL",
            "Deal",
            defs["deals"],
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            "hs_lastmodifieddate",
            ("dealname",),
        ),
    }


OBJECT_ALIASES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}


@dataclass
class PropError:
    name: str
    code: str
    message: str


def option_message(value: str, options: tuple[tuple[str, str], ...]) -> str:
    """[CAPTURE INVALID_OPTION: "Developer was not one of the allowed options: [label:
    \\"Accounting\\"\\nvalue: \\"accounting\\"\\n...]" with code INVALID_OPTION, quoted in public
    code; the field list follows a public sandbox-fidelity document's captures.]"""
    listed = ", ".join(
        f'label: "{label}"\nvalue: "{val}"\ndisplay_order: {index}\nhidden: false\n'
        f"read_only: false\n"
        for index, (val, label) in enumerate(options)
    )
    return f"{value} was not one of the allowed options: [{listed}]"


def date_error(value: str) -> str | None:
    """HubSpot date properties take epoch milliseconds at midnight UTC (or an ISO date).

    [CAPTURE INVALID_DATE: "1496643178000 is at 6:12:58.0 UTC, not midnight!",
    "1579179660000 is at 13:1:0.0 UTC, not midnight!" (HubSpot responses quoted in hull and
    other public integrations).] The text for a value that is no date at all is the fake's own.
    """
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        rest = int(text) % DAY_MS
        if rest == 0:
            return None
        hours, minutes = rest // 3_600_000, rest // 60_000 % 60
        seconds, millis = rest // 1000 % 60, rest % 1000
        return f"{text} is at {hours}:{minutes}:{seconds}.{millis} UTC, not midnight!"
    if ISO_DATE_RE.match(text):
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            pass
        else:
            return None
    return f"{text} is not a valid date; expected epoch milliseconds at midnight UTC"


def datetime_ok(value: str) -> bool:
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return True
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def number_ok(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def check_properties(otype: ObjectType, props: Json) -> tuple[dict[str, str], list[PropError]]:
    """(the values as HubSpot stores them, the per-property errors).

    Codes and texts [CAPTURE PROPERTY_DOESNT_EXIST, a full v3 body: {"status":"error","message":
    "Property values were not valid: [{\\"isValid\\":false,\\"message\\":\\"Property
    \\\\\\"description\\\\\\" does not exist\\",\\"error\\":\\"PROPERTY_DOESNT_EXIST\\",\\"name\\":
    \\"description\\",\\"localizedErrorMessage\\":...,\\"portalId\\":244764782}]","correlationId":
    ...,"errors":[{"message":"Property \\"description\\" does not exist","code":
    "PROPERTY_DOESNT_EXIST","context":{"propertyName":["description"]}}],"category":
    "VALIDATION_ERROR"}]; INVALID_EMAIL "Email address x is invalid" and INVALID_LONG
    "1/1/1 was not a valid long." [CAPTURE hull-hubspot test fixtures]; READ_ONLY_VALUE text
    from a public sandbox-fidelity document's captures.
    """
    clean: dict[str, str] = {}
    errors: list[PropError] = []
    for name, raw in props.items():
        value = scalar_text(raw)
        pdef = otype.properties.get(name)
        if pdef is None:
            errors.append(
                PropError(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            )
            continue
        if pdef.read_only:
            errors.append(
                PropError(
                    name,
                    "READ_ONLY_VALUE",
                    f'"{name}" is a calculated property; its value cannot be set.',
                )
            )
            continue
        if value == "":
            clean[name] = ""  # "Properties values can be cleared by passing an empty string" [SPEC]
            continue
        if pdef.type == "enumeration":
            allowed = {opt for opt, _ in pdef.options}
            bad = [part for part in value.split(";") if part not in allowed]
            if bad:
                errors.append(
                    PropError(name, "INVALID_OPTION", option_message(bad[0], pdef.options))
                )
                continue
        elif pdef.type == "date":
            problem = date_error(value)
            if problem is not None:
                errors.append(PropError(name, "INVALID_DATE", problem))
                continue
        elif pdef.type == "datetime":
            if not datetime_ok(value):
                errors.append(PropError(name, "INVALID_DATETIME", f"{value} was not a valid long."))
                continue
        elif pdef.type == "number":
            if not number_ok(value):
                errors.append(PropError(name, "INVALID_LONG", f"{value} was not a valid long."))
                continue
        elif pdef.type == "bool" and value not in ("true", "false"):
            errors.append(PropError(name, "INVALID_BOOLEAN", f"{value} was not a valid boolean."))
            continue
        if pdef.format == "email":
            value = value.strip().lower()  # HubSpot keeps contact emails lowercase
            if not EMAIL_RE.match(value):
                errors.append(PropError(name, "INVALID_EMAIL", f"Email address {value} is invalid"))
                continue
        clean[name] = value
    return clean, errors
