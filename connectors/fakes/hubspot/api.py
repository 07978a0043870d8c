#!/usr/bin/env python3
"""A faithful fake of the HubSpot APIs crmhub's HubSpot connector uses: OAuth token refresh and
the v3 CRM object endpoints for contacts and companies.

Tests, the benchmark and the ``make run`` demo start it as a subprocess with ``--port 0`` and read
the port from the one line it prints on start (``fake hubspot listening on http://HOST:PORT``).
Like ``examples/demo_target.py`` it is one file on the standard library only
(``http.server.ThreadingHTTPServer``): HTTP/1.1 keep-alive, Content-Length on every answer,
TCP_NODELAY, a deep accept queue, daemon threads, no per-request logging unless ``--verbose``,
all state in memory behind one lock, SIGTERM exits 0.

Every request is checked against HubSpot's official request schemas, which live next to this
file in ``hubspot_schemas.json`` (extracted from HubSpot's OpenAPI specs, with the source and each
deliberate deviation documented there). A request HubSpot would refuse for its shape (wrong
Content-Type, body that is not JSON, a missing required field, a wrong type, more than 100 batch
inputs, duplicate batch ids, an upsert without ``idProperty``, an unknown route) is answered the
way HubSpot answers it *and* recorded in ``GET /_control/violations``, so a test can assert that a
client never sent one. Property *value* errors (unknown property, bad date, bad option) are
answered like HubSpot but are data errors, not violations.

API (``{object}`` is ``contacts`` or ``companies``; ``contact``, ``company``, ``0-1``, ``0-2``
work too):

* ``POST /oauth/v1/token`` (form: grant_type=refresh_token, client_id, client_secret,
  refresh_token) -> 200 ``{"token_type":"bearer","refresh_token","access_token","expires_in"}``;
  400 ``{"status":"BAD_CLIENT_ID"|"BAD_CLIENT_SECRET"|"BAD_GRANT_TYPE"|"BAD_AUTH_CODE"|
  "BAD_REFRESH_TOKEN","message":...,"correlationId","requestId"}``; 415 for a non-form body.
* ``POST /crm/v3/objects/{object}`` -> 201 + Location; 409 CONFLICT on a duplicate contact email.
* ``GET /crm/v3/objects/{object}`` (limit, after, properties), ``GET|PATCH|DELETE
  /crm/v3/objects/{object}/{id}`` (``idProperty``, ``properties``).
* ``POST /crm/v3/objects/{object}/search`` (filterGroups/filters, query, sorts, limit, after).
* ``POST /crm/v3/objects/{object}/batch/{upsert|read|create|update|archive}``.

Every ``/crm`` request needs ``Authorization: Bearer <token>``: an access token from the token
endpoint (expires after ``--token-ttl`` seconds) or the ``--private-app-token``. Authenticated
``/crm`` answers carry HubSpot's ``X-HubSpot-RateLimit-*`` headers; the ten-secondly limit
(``--ten-secondly``), the daily limit of private apps (``--daily-limit``) and the search limit
(``--search-per-second``) really answer 429 with HubSpot's body when exceeded.

Control API (never rate limited, faulted or auth-checked) under ``/_control``:

* ``GET  /_control/health`` -> ``{"ok": true}``
* ``POST /_control/faults`` with one spec or a list -> 201 ``{"added","applied","faults"}``. A spec
  is ``{"mode": ..., "count": N, "seconds": T, "ratio": r, "seed": s, "status": 5xx,
  "latency_ms": ms, "retry_after": secs, "methods": [...], "objects": [...], "endpoints": [...],
  "message": text}``. Modes: ``error5xx``, ``latency``, ``drop`` (close without answering),
  ``rate_limit_burst`` (429 TEN_SECONDLY_ROLLING), ``rate_limit_daily`` (429 DAILY), and the
  immediate ``expire_tokens`` (every access token issued so far expires now) and
  ``revoke_refresh_token`` (every valid refresh token stops working). Faults apply to ``/crm``
  requests unless ``endpoints`` names others (``"oauth.token"``, ``"contacts.batch_upsert"``,
  a prefix such as ``"contacts"``, or ``"*"``).
* ``GET /_control/faults``; ``DELETE /_control/faults`` clears them.
* ``POST /_control/refresh-token`` ``{"refresh_token": t}`` (or ``{}`` for a new one) makes t the
  one valid refresh token, as after re-authorising the app -> ``{"refresh_token": t}``.
* ``GET /_control/auth`` -> valid refresh tokens and issued access tokens with their expiry.
* ``GET|POST /_control/limits`` -> read or change ``ten_secondly``, ``daily``,
  ``search_per_second``, ``token_ttl`` at run time.
* ``GET /_control/records[?object=contacts]`` -> every stored record with all its properties.
* ``GET /_control/log?since=N&limit=M`` -> ``{"entries", "last_seq"}``; an entry is ``{"seq",
  "time", "method", "path", "query", "endpoint", "object", "status", "body", "fault", "auth"}``.
* ``GET /_control/stats`` -> counts per endpoint and status, ``api_calls``, token refreshes, 429s...
* ``GET /_control/violations`` -> ``{"violations": [...], "count": n}``.
* ``POST /_control/reset`` -> clears records, log, counters, faults, violations and rate windows,
  and restores the command-line limits and refresh token (issued access tokens stay as they are).

Sources (each also cited where it is used):

* [SPEC] HubSpot's OpenAPI specs, github.com/HubSpot/HubSpot-public-api-spec-collection:
  PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json,
  PublicApiSpecs/CRM/Companies/Rollouts/424/v3/companies.json,
  PublicApiSpecs/Auth/Oauth/Rollouts/155908/v1/oauth.json.
* [ERRORS] https://developers.hubspot.com/docs/api-reference/error-handling (error fields,
  multi-status batch errors with objectWriteTraceId).
* [LIMITS] https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines,
  https://developers.hubspot.com/changelog/increasing-our-api-limits (190 per 10 s for
  Professional/Enterprise private apps), https://developers.hubspot.com/changelog/
  rate-limit-headers-will-now-appear-for-oauth-authenticated-calls (no Daily headers for OAuth).
* Captured real responses quoted in public code and threads, cited inline as [CAPTURE ...].

Known guesses and deviations (everything else follows a source above): the texts of
BAD_CLIENT_SECRET/BAD_GRANT_TYPE/BAD_AUTH_CODE, of the 100-input batch limit, of a non-date value
in a date property, of a non-unique idProperty and of 405/415 answers; the line/column in
"Invalid input JSON" messages (always line 1, column 2); which properties create/update/upsert
return (all stored ones, sorted); 409 for a PATCH or upsert that takes another record's unique
value; no Retry-After on 429 (HubSpot sends none for these policies); search is immediately
consistent (HubSpot's index lags by seconds); no scopes (no 403 MISSING_SCOPES); one account; the
daily window never rolls over by itself (``/_control/reset`` or ``/_control/limits``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import math
import os
import re
import secrets
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakehttp import (
    BadRequest,
    FakeServer,
    FaultBase,
    Json,
    JsonHandler,
    Response,
    StateBase,
    add_verbose,
    base_url,
    cli_parser,
    common_fault_args,
    control_json,
    new_log,
    number_option,
    parse_fault_spec,
    serve,
)

SCHEMA_FILE = Path(__file__).with_name("hubspot_schemas.json")
VIOLATION_LIMIT = 10_000
# HubSpot answers application/json;charset=utf-8, no space [CAPTURE: header dump quoted in
# a public sandbox-fidelity document, "Content type | application/json;charset=utf-8"].
JSON_TYPE = "application/json;charset=utf-8"
API_BASE = "https://api.hubapi.com"
MAX_BATCH_INPUTS = 100  # hubspot_schemas.json x-crmhub-overrides.maxBatchInputs
MAX_HISTORY_BATCH_INPUTS = 50
FAULT_MODES = (
    "error5xx",
    "latency",
    "drop",
    "rate_limit_burst",
    "rate_limit_daily",
    "expire_tokens",
    "revoke_refresh_token",
)
IMMEDIATE_MODES = ("expire_tokens", "revoke_refresh_token")
BATCH_OPS = ("upsert", "read", "create", "update", "archive")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY_MS = 86_400_000

# A control request the fake refuses with 400.
BadControl = BadRequest

# --- HubSpot's texts ------------------------------------------------------------------------

# 401 for a missing or unknown token [CAPTURE: raw logs quoted in a public sandbox-fidelity
# document; also jeremylongshore/claude-code-plugins-plus-skills hubspot-common-errors].
AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
# The batch limit text is assumed by analogy with the observed property-history limit text
# [CAPTURE: activepieces/activepieces PR #9359: "The maximum number of inputs supported in a
# batch request for property histories is 50. Please reduce the number of items and try again"].
BATCH_LIMIT_MESSAGE = (
    "The maximum number of inputs supported in a batch request is {limit}. "
    "Please reduce the number of items and try again"
)


def now_iso(ts: float | None = None) -> str:
    """HubSpot's timestamp form, ``2019-10-30T03:30:17.883Z`` [SPEC SimplePublicObject example]."""
    moment = dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def hs_error(
    message: str,
    *,
    category: str | None = None,
    errors: list[Json] | None = None,
    context: dict[str, list[str]] | None = None,
    **extra: Any,
) -> Json:
    """HubSpot's error body: status, message, correlationId, then errors, context, category when
    present [SPEC components.schemas.Error; ERRORS; key order as in the captures below]."""
    body: Json = {"status": "error", "message": message, "correlationId": new_correlation_id()}
    if errors:
        body["errors"] = errors
    if context:
        body["context"] = context
    if category:
        body["category"] = category
    body.update(extra)
    return body


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def param_list(self, name: str) -> list[str] | None:
        """A HubSpot list parameter: repeated and/or comma separated (``properties=a,b``)."""
        values = self.query.get(name)
        if values is None:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]


@dataclass
class Outcome:
    """What answering one API request produced, for the answer and the log."""

    response: Response
    endpoint: str
    obj: str | None
    body: Any = None
    fault: str | None = None
    auth: str | None = None
    problems: list[Json] | None = None  # not None: a contract violation


class Rejected(Exception):
    """An API request answered early (schema violation, bad idProperty...)."""

    def __init__(self, response: Response, problems: list[Json] | None = None) -> None:
        super().__init__(str(response.status))
        self.response = response
        self.problems = problems  # not None: record as a contract violation


# --- schemas ----------------------------------------------------------------------------------

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
    """The request schemas of hubspot_schemas.json and a validator for the subset of JSON Schema
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
            if enum is not None and _scalar_text(value) not in enum:
                problems.append(
                    {
                        "path": path,
                        "problem": "enum",
                        "value": _scalar_text(value),
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


def _scalar_text(value: Any) -> str:
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


# --- properties -------------------------------------------------------------------------------


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
    """Contacts and companies from the catalogue in hubspot_schemas.json plus --custom-property.

    Default properties returned by GET and search when none are requested follow HubSpot's search
    guide table (contacts: createdate, email, firstname, hs_object_id, lastmodifieddate,
    lastname; companies: domain, createdate, name, hs_lastmodifieddate, hs_object_id),
    https://developers.hubspot.com/docs/api-reference/legacy/crm/search-the-crm.
    """
    catalogue = book.catalogue
    defs: dict[str, dict[str, PropertyDef]] = {}
    for obj in ("contacts", "companies"):
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
            raise SystemExit(f"--custom-property {item!r}: expected OBJECT:NAME[:TYPE][:unique]")
        kind = parts[2] if len(parts) > 2 and parts[2] else "string"
        if kind not in ("string", "number", "date", "datetime", "bool"):
            raise SystemExit(f"--custom-property {item!r}: unknown type {kind!r}")
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
    }


OBJECT_ALIASES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
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
        value = _scalar_text(raw)
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


def property_error_body(errors: list[PropError], portal_id: int) -> Json:
    """HubSpot's 400 for invalid property values (see check_properties for the capture)."""
    items = [
        {
            "isValid": False,
            "message": err.message,
            "error": err.code,
            "name": err.name,
            "localizedErrorMessage": err.message,
            "portalId": portal_id,
        }
        for err in errors
    ]
    return hs_error(
        "Property values were not valid: "
        + json.dumps(items, separators=(",", ":"), ensure_ascii=False),
        errors=[
            {"message": err.message, "code": err.code, "context": {"propertyName": [err.name]}}
            for err in errors
        ],
        category="VALIDATION_ERROR",
    )


def conflict_body(otype: ObjectType, existing_id: str) -> Json:
    """[CAPTURE 409: {"status":"error","message":"Contact already exists. Existing ID: 1234",
    "correlationId":...,"category":"CONFLICT"}, HubSpot/hubspot-api-python issue #51 (batch
    create) and many integrations that parse "Existing ID: <id>" out of it.] HubSpot began
    sending a longer variant (category OBJECT_ALREADY_EXISTS, error CONTACT_EXISTS) to some
    accounts in 2024 (community.hubspot.com thread "Updated 409 Conflict responses"); the
    classic CONFLICT body is what this fake sends. The company text is the fake's analogue."""
    return hs_error(
        f"{otype.label} already exists. Existing ID: {existing_id}", category="CONFLICT"
    )


def not_found_body() -> Json:
    """A numeric id that does not exist [CAPTURE, per a public sandbox-fidelity document:
    404 {"status":"error","message":"resource not found","correlationId":...}]."""
    return hs_error("resource not found")


def objects_not_found(otype: ObjectType, ids: list[str]) -> Json:
    """One batch error entry for missing records [CAPTURE: {"status":"error","category":
    "OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not
    exist. Check that ids are valid.","context":{"ids":[...]}} with 207, quoted in several
    public HubSpot integrations' fixtures]."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": (
            f"Could not get some {otype.singular} objects, they may be deleted or not exist. "
            "Check that ids are valid."
        ),
        "context": {"ids": ids},
    }


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Fault(FaultBase):
    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "mode",
        "count",
        "remaining",
        "seconds",
        "expires_in",
        "ratio",
        "seed",
        "status",
        "latency_ms",
        "retry_after",
        "methods",
        "objects",
        "endpoints",
        "message",
        "hits",
        "active",
    )

    retry_after: float | None = None
    endpoints: tuple[str, ...] | None = None

    def matches(self, method: str, endpoint: str, obj: str | None) -> bool:
        if not self.targets(method, obj):
            return False
        if self.endpoints is None:
            return endpoint != "oauth.token"
        return any(
            pattern == "*"
            or endpoint == pattern
            or endpoint.startswith(pattern + ".")
            or (pattern == "crm" and endpoint != "oauth.token")
            for pattern in self.endpoints
        )

    def describe_extra(self) -> Json:
        return {
            "retry_after": self.retry_after,
            "endpoints": list(self.endpoints) if self.endpoints is not None else None,
        }


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "status", "latency_ms", "retry_after"),
        texts=("message",),
        lists=("methods", "objects", "endpoints"),
    )
    if options["objects"] is not None:
        options["objects"] = [OBJECT_ALIASES.get(o, o) for o in options["objects"]]
    endpoints = options["endpoints"]
    return Fault(
        id=fault_id,
        **common_fault_args(options),
        retry_after=options["retry_after"],
        endpoints=tuple(endpoints) if endpoints is not None else None,
    )


# --- state ------------------------------------------------------------------------------------


@dataclass
class Config:
    client_id: str
    client_secret: str
    refresh_token: str
    private_app_token: str | None
    token_ttl: int
    rotate_refresh_tokens: bool
    ten_secondly: int
    daily_limit: int
    search_per_second: int
    portal_id: int
    app_id: int


@dataclass
class AccessToken:
    expires_at: float  # wall clock, so the EXPIRED_AUTHENTICATION context can show it
    issued_at: float


class State(StateBase[Fault]):
    """Records, tokens, rate windows, the log, counters, faults and violations, behind one lock."""

    def __init__(self, config: Config, book: SchemaBook, types: dict[str, ObjectType]) -> None:
        super().__init__()
        self.initial = dataclasses.replace(config)  # what /_control/reset goes back to
        self.config = config
        self.book = book
        self.types = types
        self.next_id = 1001
        self.access_tokens: dict[str, AccessToken] = {}
        self.clear()

    def clear(self) -> None:
        self.config = dataclasses.replace(self.initial)
        self.records: dict[str, dict[str, Json]] = {name: {} for name in self.types}
        self.unique: dict[tuple[str, str], dict[str, str]] = {}
        self.refresh_tokens: set[str] = {self.config.refresh_token}
        self.log = new_log()
        self.violations: deque[Json] = deque(maxlen=VIOLATION_LIMIT)
        self.violation_count = 0
        self.faults = []
        self.window: deque[float] = deque()  # ten-secondly counted calls (monotonic)
        self.search_window: deque[float] = deque()
        self.daily_used = 0
        self.requests = 0
        self.api_calls = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_fault = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.token_refreshes = 0
        self.token_errors: Counter[str] = Counter()
        self.created = 0
        self.updated = 0

    # --- faults -------------------------------------------------------------------------------

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def take_fault(
        self, method: str, endpoint: str, obj: str | None, modes: tuple[str, ...]
    ) -> Fault | None:
        return self.first_fault(
            lambda fault: fault.mode in modes and fault.matches(method, endpoint, obj)
        )

    def install_faults(self, parsed: list[Fault]) -> tuple[list[Fault], Json]:
        """Apply the immediate modes now; keep the others."""
        added: list[Fault] = []
        applied: list[Json] = []
        for fault in parsed:
            if fault.mode == "expire_tokens":
                now = time.time()
                expired = 0
                for token in self.access_tokens.values():
                    if token.expires_at > now:
                        token.expires_at = now
                        expired += 1
                applied.append({"mode": fault.mode, "expired": expired})
            elif fault.mode == "revoke_refresh_token":
                applied.append({"mode": fault.mode, "revoked": len(self.refresh_tokens)})
                self.refresh_tokens = set()
            else:
                added.append(fault)
        return added, {"applied": applied}

    # --- logging ------------------------------------------------------------------------------

    def record(self, req: Request, out: Outcome) -> None:
        response, problems = out.response, out.problems
        with self.lock:
            self.seq += 1
            self.requests += 1
            status = None if response.drop else response.status
            self.by_endpoint[out.endpoint] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            entry = {
                "seq": self.seq,
                "time": time.time(),
                "method": req.method,
                "path": req.path,
                "query": {k: v if len(v) > 1 else v[0] for k, v in req.query.items()},
                "endpoint": out.endpoint,
                "object": out.obj,
                "status": status,
                "body": out.body,
                "fault": out.fault,
                "auth": out.auth,
            }
            self.log.append(entry)
            if problems is not None:
                self.violation_count += 1
                message = (
                    response.payload.get("message") if isinstance(response.payload, dict) else None
                )
                self.violations.append(
                    {
                        "seq": self.seq,
                        "time": entry["time"],
                        "method": req.method,
                        "path": req.path,
                        "endpoint": out.endpoint,
                        "status": status,
                        "message": message,
                        "problems": problems,
                        "body": out.body,
                    }
                )

    # --- auth ---------------------------------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> tuple[str | None, Response | None]:
        """("private_app" | "oauth", None) or (None, the 401)."""
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, Response(401, hs_error(AUTH_NOT_FOUND, category="INVALID_AUTHENTICATION"))
        private = self.config.private_app_token
        if private is not None and hmac.compare_digest(token.encode(), private.encode()):
            return "private_app", None
        with self.lock:
            info = self.access_tokens.get(token)
            if info is None:
                return None, Response(
                    401, hs_error(AUTH_NOT_FOUND, category="INVALID_AUTHENTICATION")
                )
            now = time.time()
            if now >= info.expires_at:
                return None, Response(401, expired_body(now - info.expires_at, info.expires_at))
        return "oauth", None

    def token(self, req: Request) -> tuple[Response, Any, list[Json] | None]:
        """POST /oauth/v1/token: (response, body to log, violation problems)."""
        config = self.config
        if req.content_type != "application/x-www-form-urlencoded":
            # [CAPTURE: a JSON body to the token endpoint gets HTTP 415; the endpoint only takes
            # application/x-www-form-urlencoded (public write-up "HubSpot App Governance and
            # Scope Errors, Decoded"; also the spec's requestBody content type, SPEC oauth.json).]
            problems = [
                {
                    "path": "$",
                    "problem": "content-type",
                    "got": req.content_type or None,
                    "expected": "application/x-www-form-urlencoded",
                }
            ]
            return Response(415, hs_error("HTTP 415 Unsupported Media Type")), None, problems
        try:
            text = req.raw.decode("utf-8")
        except UnicodeDecodeError:
            text = req.raw.decode("utf-8", "replace")
        form: dict[str, str] = {k: v[-1] for k, v in req.query.items()}
        form.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
        logged = {k: ("[redacted]" if k == "client_secret" else v) for k, v in form.items()}
        problems = self.book.validate("OAuthTokenForm", form)

        def fail(status: str, message: str) -> tuple[Response, Any, list[Json] | None]:
            # [CAPTURE: {"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh
            # token"} (a HubSpot body quoted in a public test suite; HubSpot/oauth-quickstart-
            # nodejs issue #17 shows 400 with content-length 171, which fits status, message,
            # correlationId and requestId); {"status":"BAD_CLIENT_ID","message":"missing or
            # unknown client id"} (public write-up "HubSpot App Governance and Scope Errors,
            # Decoded", which also notes the client id is checked before the grant type).
            # BAD_CLIENT_SECRET, BAD_GRANT_TYPE and BAD_AUTH_CODE are observed status names;
            # their message texts here are the fake's, in the same "missing or unknown" form.]
            self.token_errors[status] += 1
            body = {
                "status": status,
                "message": message,
                "correlationId": new_correlation_id(),
                "requestId": uuid.uuid4().hex,
            }
            return Response(400, body), logged, problems or None

        with self.lock:
            client_id = form.get("client_id", "")
            if not client_id or not hmac.compare_digest(
                client_id.encode(), config.client_id.encode()
            ):
                return fail("BAD_CLIENT_ID", "missing or unknown client id")
            grant = form.get("grant_type", "")
            if grant == "authorization_code":
                return fail("BAD_AUTH_CODE", "missing or unknown auth code")
            if grant != "refresh_token":
                return fail("BAD_GRANT_TYPE", "missing or unknown grant type")
            secret = form.get("client_secret", "")
            if not secret or not hmac.compare_digest(
                secret.encode(), config.client_secret.encode()
            ):
                return fail("BAD_CLIENT_SECRET", "missing or unknown client secret")
            refresh = form.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                return fail("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
            if config.rotate_refresh_tokens:
                self.refresh_tokens.discard(refresh)
                refresh = str(uuid.uuid4())
                self.refresh_tokens.add(refresh)
            access = "CN" + secrets.token_urlsafe(48)
            now = time.time()
            self.access_tokens[access] = AccessToken(now + config.token_ttl, now)
            self.token_refreshes += 1
            # [SPEC oauth.json AccessTokenResponse; CAPTURE {"refresh_token":...,"access_token":
            # ...,"expires_in":1800} quoted by useparagon.com's HubSpot expired-token page.]
            body = {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": access,
                "expires_in": config.token_ttl,
            }
        return Response(200, body), logged, problems or None

    def set_refresh_token(self, body: Any) -> Json:
        token = None
        if isinstance(body, dict):
            token = body.get("refresh_token")
        if token is not None and (not isinstance(token, str) or not token):
            raise BadControl(
                "invalid refresh token",
                [{"field": "refresh_token", "message": "must be a non-empty string"}],
            )
        with self.lock:
            token = token or str(uuid.uuid4())
            self.refresh_tokens = {token}
            return {"refresh_token": token}

    def auth_state(self) -> Json:
        with self.lock:
            now = time.time()
            return {
                "refresh_tokens": sorted(self.refresh_tokens),
                "private_app_token": self.config.private_app_token is not None,
                "access_tokens": [
                    {
                        "access_token": token,
                        "expires_in": round(info.expires_at - now, 3),
                        "expired": now >= info.expires_at,
                    }
                    for token, info in self.access_tokens.items()
                ],
            }

    # --- rate limits --------------------------------------------------------------------------

    def rate_limit(
        self, endpoint: str, auth: str, forced: Fault | None
    ) -> tuple[Response | None, dict[str, str]]:
        """Count the call against the limits; (the 429 or None, the X-HubSpot-RateLimit headers).

        Headers [LIMITS; HubSpot changelog 2018-11-06 "Rate limit information headers will be
        included in HTTP responses"]: -Daily and -Daily-Remaining are only sent for private-app
        tokens (OAuth calls have no daily limit), -Interval-Milliseconds, -Max and -Remaining
        describe the ten-secondly window, -Secondly and -Secondly-Remaining are still sent but
        no longer enforced. Search is exempt from the ten-secondly limit [SPEC contacts.json
        x-hubspot-rate-limit-exemptions: ["ten-secondly"]] and has its own per-second limit.
        """
        config = self.config
        search = endpoint.endswith(".search")
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - 10.0:
                self.window.popleft()
            while self.search_window and self.search_window[0] <= now - 1.0:
                self.search_window.popleft()
            policy: str | None = None
            if forced is not None:
                policy = "DAILY" if forced.mode == "rate_limit_daily" else "TEN_SECONDLY_ROLLING"
            elif (
                auth == "private_app"
                and config.daily_limit
                and self.daily_used >= config.daily_limit
            ):
                policy = "DAILY"
            elif (
                search
                and config.search_per_second
                and len(self.search_window) >= config.search_per_second
            ):
                policy = "SECONDLY"
            elif not search and config.ten_secondly and len(self.window) >= config.ten_secondly:
                policy = "TEN_SECONDLY_ROLLING"
            if policy is None:
                if search:
                    self.search_window.append(now)
                else:
                    self.window.append(now)
                self.daily_used += 1
                self.api_calls += 1
            else:
                self.rate_limited[policy] += 1
            headers = self._limit_headers(now, auth, exhausted=policy == "TEN_SECONDLY_ROLLING")
        if policy is None:
            return None, headers
        return Response(429, rate_limit_body(policy, config, forced), headers), headers

    def _limit_headers(self, now: float, auth: str, exhausted: bool) -> dict[str, str]:
        config = self.config
        headers: dict[str, str] = {}
        if auth == "private_app" and config.daily_limit:
            headers["X-HubSpot-RateLimit-Daily"] = str(config.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(config.daily_limit - self.daily_used, 0)
            )
        if config.ten_secondly:
            remaining = 0 if exhausted else max(config.ten_secondly - len(self.window), 0)
            secondly = math.ceil(config.ten_secondly / 10)
            last_second = 0
            for stamp in reversed(self.window):
                if stamp <= now - 1.0:
                    break
                last_second += 1
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
            headers["X-HubSpot-RateLimit-Max"] = str(config.ten_secondly)
            headers["X-HubSpot-RateLimit-Remaining"] = str(remaining)
            headers["X-HubSpot-RateLimit-Secondly"] = str(secondly)
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(max(secondly - last_second, 0))
        return headers

    def set_limits(self, body: Any) -> Json:
        if not isinstance(body, dict):
            raise BadControl(
                "expected a JSON object", [{"field": "body", "message": "expected a JSON object"}]
            )
        errors: list[Json] = []
        known = ("ten_secondly", "daily", "search_per_second", "token_ttl")
        errors.extend({"field": k, "message": "unknown limit"} for k in body if k not in known)
        values = {k: number_option(body, k, errors, integer=True) for k in known}
        if errors:
            raise BadControl("invalid limits", errors)
        with self.lock:
            if values["ten_secondly"] is not None:
                self.config.ten_secondly = values["ten_secondly"]
            if values["daily"] is not None:
                self.config.daily_limit = values["daily"]
            if values["search_per_second"] is not None:
                self.config.search_per_second = values["search_per_second"]
            if values["token_ttl"] is not None:
                self.config.token_ttl = values["token_ttl"]
        return self.limits()

    def limits(self) -> Json:
        config = self.config
        return {
            "ten_secondly": config.ten_secondly,
            "daily": config.daily_limit,
            "search_per_second": config.search_per_second,
            "token_ttl": config.token_ttl,
            "daily_used": self.daily_used,
        }

    # --- records ------------------------------------------------------------------------------

    def _unique_index(self, obj: str, prop: str) -> dict[str, str]:
        return self.unique.setdefault((obj, prop), {})

    @staticmethod
    def _norm(prop: str, value: str) -> str:
        return value.strip().lower() if prop == "email" else value

    def find(self, otype: ObjectType, ident: str, id_property: str | None) -> Json | None:
        table = self.records[otype.name]
        if id_property in (None, "hs_object_id"):
            return table.get(ident)
        assert id_property is not None
        found = self._unique_index(otype.name, id_property).get(self._norm(id_property, ident))
        return table.get(found) if found is not None else None

    def unique_conflict(
        self, otype: ObjectType, clean: dict[str, str], own_id: str | None
    ) -> str | None:
        for prop, value in clean.items():
            pdef = otype.properties.get(prop)
            if pdef is None or not pdef.unique or value == "":
                continue
            existing = self._unique_index(otype.name, prop).get(self._norm(prop, value))
            if existing is not None and existing != own_id:
                return existing
        return None

    def _index(self, otype: ObjectType, rec: Json, old: dict[str, str]) -> None:
        for prop, pdef in otype.properties.items():
            if not pdef.unique:
                continue
            index = self._unique_index(otype.name, prop)
            before = old.get(prop, "")
            after = rec["properties"].get(prop, "")
            if before and index.get(self._norm(prop, before)) == rec["id"]:
                del index[self._norm(prop, before)]
            if after:
                index[self._norm(prop, after)] = rec["id"]

    def create(self, otype: ObjectType, clean: dict[str, str]) -> Json:
        ident = str(self.next_id)
        self.next_id += 1
        stamp = now_iso()
        props = {k: v for k, v in clean.items()}
        props.setdefault("createdate", stamp)
        props["hs_object_id"] = ident
        props[otype.last_modified] = stamp
        rec = {
            "id": ident,
            "properties": props,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.records[otype.name][ident] = rec
        self._index(otype, rec, {})
        self.created += 1
        return rec

    def update(self, otype: ObjectType, rec: Json, clean: dict[str, str]) -> Json:
        old = dict(rec["properties"])
        stamp = now_iso()
        rec["properties"].update(clean)
        rec["properties"][otype.last_modified] = stamp
        rec["updatedAt"] = stamp
        self._index(otype, rec, old)
        self.updated += 1
        return rec

    def archive(self, otype: ObjectType, rec: Json) -> None:
        old = dict(rec["properties"])
        rec["properties"] = {}
        self._index(otype, rec, old)
        del self.records[otype.name][rec["id"]]

    def render(
        self, otype: ObjectType, rec: Json, requested: list[str] | None, *, everything: bool = False
    ) -> Json:
        """A SimplePublicObject [SPEC]. Without ``properties`` the object type's defaults come
        back; with them, the requested ones plus hs_object_id, createdate and the last-modified
        date; a requested property that has no value is null and an unknown one is left out
        (the spec: "If any of the specified properties are not present on the requested
        object(s), they will be ignored")."""
        stored = rec["properties"]
        if everything:
            props: dict[str, Any] = dict(sorted(stored.items()))
        else:
            names = (
                list(otype.defaults)
                if requested is None
                else [
                    *requested,
                    "hs_object_id",
                    "createdate",
                    otype.last_modified,
                ]
            )
            props = {
                name: stored.get(name)
                for name in sorted(set(names))
                if name in otype.properties or name in stored
            }
        return {
            "id": rec["id"],
            "properties": props,
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
            "archived": False,
        }

    def dump(self, obj: str | None) -> Json:
        with self.lock:
            return {
                "records": [
                    {"object": name, **self.render(self.types[name], rec, None, everything=True)}
                    for name, table in self.records.items()
                    if obj is None or name == obj
                    for rec in table.values()
                ]
            }

    # --- control reads ------------------------------------------------------------------------

    def stats(self) -> Json:
        with self.lock:
            now = time.monotonic()
            return {
                "requests": self.requests,
                "api_calls": self.api_calls,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
                "token_refreshes": self.token_refreshes,
                "token_errors": dict(self.token_errors),
                "rate_limited": dict(self.rate_limited),
                "records": {name: len(table) for name, table in self.records.items()},
                "created": self.created,
                "updated": self.updated,
                "violations": self.violation_count,
                "faults_applied": dict(self.by_fault),
                "faults_active": self.active_faults(now),
                "daily_used": self.daily_used,
                "log_entries": len(self.log),
                "last_seq": self.seq,
            }

    def violation_list(self) -> Json:
        with self.lock:
            return {"violations": list(self.violations), "count": self.violation_count}


def expired_body(ago: float, expired_at: float) -> Json:
    """[CAPTURE: {"status":"error","message":"The OAuth token used to make this call expired 75
    second(s) ago.","correlationId":...,"category":"EXPIRED_AUTHENTICATION","context":{"expire
    time":["2022-06-21T10:37:52.040Z"]}} (quoted in a public C# integration); "expired 5
    minute(s) ago" (useparagon.com). The unit switch points are the fake's guess.]"""
    seconds = max(int(ago), 0)
    if seconds < 120:
        amount = f"{seconds} second(s)"
    elif seconds < 7200:
        amount = f"{seconds // 60} minute(s)"
    else:
        amount = f"{seconds // 3600} hour(s)"
    return hs_error(
        f"The OAuth token used to make this call expired {amount} ago.",
        context={"expire time": [now_iso(expired_at)]},
        category="EXPIRED_AUTHENTICATION",
    )


def rate_limit_body(policy: str, config: Config, fault: Fault | None) -> Json:
    """[CAPTURE ten-secondly: {"status":"error","message":"You have reached your
    ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":...,"policyName":
    "TEN_SECONDLY_ROLLING","groupName":"publicapi:private_app-api-calls-ten-secondly:<app>:<portal>"}
    ; daily: "You have reached your daily limit." with policyName DAILY and a requestId; search:
    "You have reached your secondly limit." (bodies quoted in several public HubSpot clients'
    tests).] HubSpot sends no Retry-After with these; a fault may add one (retry_after)."""
    if policy == "DAILY":
        message = "You have reached your daily limit."
    elif policy == "SECONDLY":
        message = "You have reached your secondly limit."
    else:
        message = "You have reached your ten_secondly_rolling limit."
    if fault is not None and fault.message:
        message = fault.message
    body: Json = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": new_correlation_id(),
        "policyName": policy,
    }
    if policy == "TEN_SECONDLY_ROLLING":
        body["groupName"] = (
            f"publicapi:private_app-api-calls-ten-secondly:{config.app_id}:{config.portal_id}"
        )
    else:
        body["requestId"] = str(uuid.uuid4())
    return body


# --- the API ----------------------------------------------------------------------------------


class Api:
    """Routes an API request through faults, auth, rate limits, schema checks and the handlers."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.book = state.book
        self.base_url = API_BASE

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str | None, list[str]]:
        """(endpoint name, canonical object or None, remaining path segments)."""
        if path.rstrip("/") == "/oauth/v1/token":
            return "oauth.token", None, []
        prefix = "/crm/v3/objects/"
        if not path.startswith(prefix):
            return "unknown", None, []
        segments = [unquote(s) for s in path[len(prefix) :].split("/")]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments.pop()
        if not segments or not segments[0]:
            return "crm.unknown", None, []
        obj = OBJECT_ALIASES.get(segments[0].lower())
        if obj is None:
            return "crm.unknown_object", None, segments
        rest = segments[1:]
        if not rest:
            return (f"{obj}.create" if method == "POST" else f"{obj}.list"), obj, rest
        if rest == ["search"]:
            return f"{obj}.search", obj, rest
        if len(rest) == 2 and rest[0] == "batch" and rest[1] in BATCH_OPS:
            return f"{obj}.batch_{rest[1]}", obj, rest
        if len(rest) == 1:
            names = {"GET": "get", "PATCH": "update", "DELETE": "archive"}
            return f"{obj}.{names.get(method, 'record')}", obj, rest
        return "crm.unknown", obj, rest

    def handle(self, req: Request) -> Outcome:
        """Faults, then auth, rate limits, schema checks and the operation itself."""
        state = self.state
        endpoint, obj, rest = self.route(req.method, req.path)
        out = Outcome(Response(0), endpoint, obj, self._logged_body(req, endpoint))
        fault = state.take_fault(req.method, endpoint, obj, ("latency", "drop", "error5xx"))
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000.0)
            out.fault = "latency"
            fault = state.take_fault(req.method, endpoint, obj, ("drop", "error5xx"))
        if fault is not None:
            out.fault = fault.mode
            if fault.mode == "drop":
                out.response = Response(0, drop=True)
                return out
            default = "internal error" if fault.status == 500 else "upstream error"
            out.response = Response(fault.status, hs_error(fault.message or default))
            return out
        if endpoint == "oauth.token":
            if req.method != "POST":
                out.response = Response(
                    405, hs_error("HTTP 405 Method Not Allowed"), {"Allow": "POST"}
                )
                out.problems = [{"path": "$", "problem": "method", "got": req.method}]
                return out
            out.response, out.body, out.problems = state.token(req)
            return out
        auth, denied = state.authenticate(req.headers)
        if denied is not None:
            out.response = denied
            return out
        assert auth is not None
        out.auth = auth
        forced = state.take_fault(
            req.method, endpoint, obj, ("rate_limit_burst", "rate_limit_daily")
        )
        if forced is not None:
            out.fault = forced.mode
        limited, headers = state.rate_limit(endpoint, auth, forced)
        if limited is not None:
            if forced is not None and forced.retry_after is not None:
                value = forced.retry_after
                shown = str(int(value)) if float(value).is_integer() else str(value)
                limited.headers["Retry-After"] = shown
            out.response = limited
            return out
        try:
            out.response = self._dispatch(req, endpoint, obj, rest)
        except Rejected as exc:
            out.response, out.problems = exc.response, exc.problems
        out.response.headers.update(headers)
        return out

    @staticmethod
    def _logged_body(req: Request, endpoint: str) -> Any:
        if not req.raw:
            return None
        if endpoint == "oauth.token":
            return None  # filled in by State.token, with the secret redacted
        try:
            return json.loads(req.raw)
        except (ValueError, UnicodeDecodeError):
            return req.raw.decode("utf-8", "replace")

    # --- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, req: Request, endpoint: str, obj: str | None, rest: list[str]) -> Response:
        if obj is None or endpoint.startswith("crm.") or endpoint == "unknown":
            if endpoint == "crm.unknown_object":
                # Not verified against a capture: HubSpot's answer to an object type it cannot
                # resolve, as remembered ("Unable to infer object type from: <name>"). The fake
                # knows only contacts and companies, so any other type is treated as a mistake.
                raise Rejected(
                    Response(
                        400,
                        hs_error(
                            f"Unable to infer object type from: {rest[0]}",
                            category="VALIDATION_ERROR",
                        ),
                    ),
                    [{"path": req.path, "problem": "unknown object type", "object": rest[0]}],
                )
            raise Rejected(
                Response(404, not_found_body()), [{"path": req.path, "problem": "unknown route"}]
            )
        otype = self.state.types[obj]
        action = endpoint.split(".", 1)[1]
        allowed = {
            "create": "POST",
            "list": "GET",
            "search": "POST",
            "get": "GET",
            "update": "PATCH",
            "archive": "DELETE",
        }
        expected = allowed.get(action, "POST")
        if action == "record" or req.method != expected:
            raise Rejected(
                Response(405, hs_error("HTTP 405 Method Not Allowed"), {"Allow": expected}),
                [{"path": req.path, "problem": "method", "got": req.method}],
            )
        handler = getattr(self, f"_op_{action}")
        result: Response = handler(req, otype, rest)
        return result

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

    # --- single-object operations --------------------------------------------------------------

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
        limit = _int_param(req.param("limit"), 10)
        limit = max(1, min(limit, 100))
        after = _int_param(req.param("after"), 0)
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
                return Response(404, _non_numeric_id(ident))
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
                return Response(404, _non_numeric_id(ident))
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

    def _op_search(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        """[SPEC PublicObjectSearchRequest; search guide: filterGroups are ORed, filters within a
        group ANDed, limit up to 200, paging.next.after; EQ on a string is case-insensitive.]"""
        body = self._body(req, "PublicObjectSearchRequest")
        groups: list[Json] = list(body.get("filterGroups") or [])
        limit = _int_param(
            _scalar_text(body.get("limit")) if body.get("limit") is not None else None, 10
        )
        limit = max(1, min(limit, 200))
        offset = _int_param(
            _scalar_text(body.get("after")) if body.get("after") is not None else None, 0
        )
        query = str(body.get("query") or "").strip().lower()
        requested = body.get("properties")
        sorts = body.get("sorts") or []
        with self.state.lock:
            table = self.state.records[otype.name]
            matches = [
                rec
                for rec in table.values()
                if (not groups or any(_group_matches(g, rec["properties"]) for g in groups))
                and (
                    not query
                    or any(query in rec["properties"].get(p, "").lower() for p in otype.searchable)
                )
            ]
            key_prop, descending = _sort_spec(sorts)
            if key_prop is None:
                matches.sort(key=lambda r: int(r["id"]))
            else:
                matches.sort(
                    key=lambda r: _sort_key(r["properties"].get(key_prop)), reverse=descending
                )
            page = matches[offset : offset + limit]
            results = [
                self.state.render(otype, rec, [str(p) for p in requested] if requested else None)
                for rec in page
            ]
        out: Json = {"total": len(matches), "results": results}
        if offset + limit < len(matches):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, out)

    # --- batch operations --------------------------------------------------------------------

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
                ident = _scalar_text(item["id"])
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

    def _op_batch_upsert(self, req: Request, otype: ObjectType, rest: list[str]) -> Response:
        started = now_iso()
        body = self._body(req, "BatchInputSimplePublicObjectBatchInputUpsert")
        inputs = self._batch_inputs(body)
        state = self.state
        for item in inputs:
            self._id_property(otype, _scalar_text(item["idProperty"]), for_upsert=True)
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
                prop = _scalar_text(item["idProperty"])
                ident = _scalar_text(item["id"])
                rec = state.find(otype, ident, prop)
                clean = dict(clean)
                if rec is None:  # a new record takes its idProperty value from the input id
                    clean[prop] = State._norm(prop, ident)
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

    @staticmethod
    def _input_key(item: Json) -> str:
        """What makes two batch inputs the same record: idProperty and its normalised value."""
        prop = _scalar_text(item.get("idProperty")) or "hs_object_id"
        return f"{State._norm(prop, _scalar_text(item['id']))}"

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
            f"{p}:{State._norm(p, v)}"
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
                ident = _scalar_text(item["id"])
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
                rec = self.state.find(otype, _scalar_text(item["id"]), None)
                if rec is not None:
                    self.state.archive(otype, rec)
        return Response(204)


def _non_numeric_id(ident: str) -> Json:
    """[CAPTURE, per a public sandbox-fidelity document: 404 "Object not found.  objectId are
    usually numeric." (two spaces) with context.id and category OBJECT_NOT_FOUND] - what a client
    gets when it forgets ``idProperty=email``."""
    return hs_error(
        "Object not found.  objectId are usually numeric.",
        context={"id": [ident]},
        category="OBJECT_NOT_FOUND",
    )


def _int_param(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _filter_matches(flt: Json, props: dict[str, str]) -> bool:
    name = str(flt.get("propertyName", ""))
    operator = str(flt.get("operator", "EQ"))
    actual = props.get(name)
    have = actual is not None and actual != ""
    if operator == "HAS_PROPERTY":
        return have
    if operator == "NOT_HAS_PROPERTY":
        return not have
    value = _scalar_text(flt.get("value")).lower()
    text = (actual or "").lower()
    if operator == "EQ":
        return have and text == value
    if operator == "NEQ":
        return text != value
    if operator in ("IN", "NOT_IN"):
        values = {_scalar_text(v).lower() for v in flt.get("values") or []}
        return (have and text in values) if operator == "IN" else text not in values
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = have and value.strip("*") in text
        return found if operator == "CONTAINS_TOKEN" else not found
    if not have:
        return False
    left, right = _sort_key(actual), _sort_key(_scalar_text(flt.get("value")))
    if operator == "GT":
        return left > right
    if operator == "GTE":
        return left >= right
    if operator == "LT":
        return left < right
    if operator == "LTE":
        return left <= right
    if operator == "BETWEEN":
        high = _sort_key(_scalar_text(flt.get("highValue")))
        return right <= left <= high
    return False


def _group_matches(group: Json, props: dict[str, str]) -> bool:
    return all(_filter_matches(f, props) for f in group.get("filters") or [])


def _sort_key(value: str | None) -> tuple[int, float, str]:
    if value is None or value == "":
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value.lower())


def _sort_spec(sorts: list[Any]) -> tuple[str | None, bool]:
    if not sorts:
        return None, False
    first = sorts[0]
    if isinstance(first, dict):
        return str(first.get("propertyName")), str(
            first.get("direction", "ASCENDING")
        ) == "DESCENDING"
    text = str(first)
    if text.startswith("-"):
        return text[1:], True
    return text, False


# --- HTTP ---------------------------------------------------------------------------------------


class FakeHubSpotServer(FakeServer):
    state: State

    def __init__(self, address: tuple[str, int], state: State, verbose: bool) -> None:
        super().__init__(address, FakeHubSpotHandler, state, verbose)
        self.api = Api(state)


class FakeHubSpotHandler(JsonHandler):
    server_version = "crmhub-fake-hubspot/1.0"
    json_type = JSON_TYPE
    ensure_ascii = False
    length_on_empty = True
    keep_blank_values = True
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "refresh-token": "POST",
        "auth": "GET",
        "limits": "GET, POST",
        "records": "GET",
        "log": "GET",
        "stats": "GET",
        "violations": "GET",
        "reset": "POST",
    }

    @property
    def hub(self) -> FakeHubSpotServer:
        assert isinstance(self.server, FakeHubSpotServer)
        return self.server

    def framing_error(self, message: str) -> Any:
        return hs_error(message)

    def first_headers(self, response: Response) -> dict[str, str]:
        payload = response.payload
        correlation = payload.get("correlationId") if isinstance(payload, dict) else None
        return {"x-hubspot-correlation-id": str(correlation or new_correlation_id())}

    def handle_api(self, path: str, query: dict[str, list[str]], raw: bytes) -> Response:
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, path, query, headers, raw)
        out = self.hub.api.handle(req)
        self.hub.state.record(req, out)
        return out.response

    def control_extra(
        self, method: str, route: str, query: dict[str, list[str]], raw: bytes
    ) -> Response:
        state = self.hub.state
        if route == "refresh-token":
            return Response(200, state.set_refresh_token(control_json(raw) or {}))
        if route == "auth":
            return Response(200, state.auth_state())
        if route == "limits":
            if method == "POST":
                return Response(200, state.set_limits(control_json(raw)))
            with state.lock:
                return Response(200, state.limits())
        if route == "records":
            obj = query.get("object", [None])[-1]
            return Response(200, state.dump(OBJECT_ALIASES.get(obj, obj) if obj else None))
        # route == "violations"
        return Response(200, state.violation_list())


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = cli_parser("A faithful fake HubSpot API for crmhub.", 8910)
    parser.add_argument(
        "--client-id",
        default=env("FAKE_HUBSPOT_CLIENT_ID", "fake-client-id"),
        help="the OAuth app's client id [env FAKE_HUBSPOT_CLIENT_ID, fake-client-id]",
    )
    parser.add_argument(
        "--client-secret",
        default=env("FAKE_HUBSPOT_CLIENT_SECRET", "fake-client-secret"),
        help="the OAuth app's client secret [env FAKE_HUBSPOT_CLIENT_SECRET]",
    )
    parser.add_argument(
        "--refresh-token",
        default=env("FAKE_HUBSPOT_REFRESH_TOKEN", "fake-refresh-token"),
        help="the initially valid refresh token [env FAKE_HUBSPOT_REFRESH_TOKEN]",
    )
    parser.add_argument(
        "--private-app-token",
        default=env("FAKE_HUBSPOT_PRIVATE_APP_TOKEN") or None,
        help="also accept this static private-app token [env FAKE_HUBSPOT_PRIVATE_APP_TOKEN]",
    )
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=1800,
        help="access token lifetime in seconds, expires_in [1800]",
    )
    parser.add_argument(
        "--rotate-refresh-tokens",
        action="store_true",
        help="each refresh issues a new refresh token and invalidates the old one",
    )
    parser.add_argument(
        "--ten-secondly",
        type=int,
        default=190,
        help="requests per rolling 10 s, 0 = unlimited [190: Professional/Enterprise private apps]",
    )
    parser.add_argument(
        "--daily-limit",
        type=int,
        default=1_000_000,
        help="private-app requests per day, 0 = unlimited [1000000]",
    )
    parser.add_argument(
        "--search-per-second",
        type=int,
        default=5,
        help="search requests per second, 0 = unlimited [5]",
    )
    parser.add_argument(
        "--portal-id", type=int, default=12345678, help="the account (hub) id [12345678]"
    )
    parser.add_argument(
        "--app-id", type=int, default=1234567, help="the app id in groupName [1234567]"
    )
    parser.add_argument(
        "--custom-property",
        action="append",
        default=[],
        metavar="OBJECT:NAME[:TYPE][:unique]",
        help="add a property, e.g. contacts:customer_id:string:unique (repeatable)",
    )
    parser.add_argument(
        "--schemas", default=str(SCHEMA_FILE), help="the schema file [hubspot_schemas.json]"
    )
    add_verbose(parser)
    args = parser.parse_args(argv)

    book = SchemaBook.load(Path(args.schemas))
    config = Config(
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        private_app_token=args.private_app_token,
        token_ttl=args.token_ttl,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
        ten_secondly=args.ten_secondly,
        daily_limit=args.daily_limit,
        search_per_second=args.search_per_second,
        portal_id=args.portal_id,
        app_id=args.app_id,
    )
    state = State(config, book, build_object_types(book, args.custom_property))
    server = FakeHubSpotServer((args.host, args.port), state, args.verbose)
    server.api.base_url = base_url(server)
    return serve(server, "fake hubspot")


if __name__ == "__main__":
    sys.exit(main())
