"""Pipedrive (API v2): persons and organizations, found or created on a match key.

Pipedrive has no upsert and no batch write, so a write is found-then-created-or-updated:
`GET /api/v2/{persons|organizations}/search?term=..&fields=email&exact_match=true` (exact match
is not case sensitive), then `POST /api/v2/{object}` or `PATCH /api/v2/{object}/{id}`; several
matches are a dead letter `ambiguous_match`, never a guess. The id found or created is
remembered in the ledger (`ledger.memo`, shared by every worker, an hour), so a record seen
once is written with one request and no search: a backlog of known records costs about one
call per event. A remembered id Pipedrive no longer knows (404/410: deleted or merged) is
forgotten and the key searched again.
Source: https://developers.pipedrive.com/docs/api/v1/Persons (v2: /persons/search, POST
/persons, PATCH /persons/{id}); the saved OpenAPI documents (connectors/fakes/pipedrive/spec).

Values: a mapping writes `email` and `phone` as plain values; Pipedrive keeps labelled lists,
`emails: [{"value", "primary", "label"}]`, so the value is sent as the one primary entry
(label `work`). On an update the matched email is left out (the person was found by it, and
other addresses a rep added stay). Fields named by a 40-character hash are custom fields
(sent under `custom_fields`); `org_id`, `owner_id` and `visible_to` are integers in v2 (which
coerces nothing), so the id a `related:` link carries is sent as a number.

Auth: `auth: {type: api_token, token_env: ...}` (the `x-api-token` header; a 401 pauses the
connection at once: an API token cannot be renewed) or `oauth2` against
https://oauth.pipedrive.com/oauth/token (client authentication by HTTP Basic, one-hour tokens;
calls go to the token answer's `api_domain`).
Errors and rate limits: connectors/pipedrive_errors.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import httpx

from connectors import pipedrive_changes
from connectors import pipedrive_errors as pd
from connectors.base import Connector, WriteResult, excerpt
from core.changes import ChangePage, Stamp
from core.config.polling import PollSpec
from core.errors import DataError, HubError
from core.mapping import MappedRecord
from core.vocabulary import DeadCategory

TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"
API = "/api/v2"
#: plain mapping fields -> Pipedrive's labelled lists
LABELLED = {"email": "emails", "phone": "phones"}
LABEL = "work"
#: v2 takes these as integers and coerces nothing (a related record's id arrives as text)
INTEGER_FIELDS = frozenset({"org_id", "owner_id", "visible_to"})
#: what each object's search may look in (the v2 spec's `fields` enum)
SEARCH_FIELDS = {
    "persons": ("email", "phone", "name", "notes", "custom_fields"),
    "organizations": ("name", "address", "notes", "custom_fields"),
}
_CUSTOM_FIELD = re.compile(r"^[0-9a-f]{40}$")


def key_of(value: Any) -> str:
    """Match values compare as Pipedrive's exact search does: without case."""
    return str(value if value is not None else "").strip().lower()


def labelled(value: Any) -> list[dict[str, Any]]:
    """A plain value (or a list of them) as Pipedrive's labelled list, the first primary."""
    values = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for item in values:
        if isinstance(item, dict):
            out.append({"label": LABEL, **item, "primary": not out})
        elif item is not None and str(item).strip():
            out.append({"value": str(item).strip(), "primary": not out, "label": LABEL})
    return out


def primary(items: Any) -> Any:
    """The primary value of a labelled list (the first when none is marked)."""
    if not isinstance(items, list) or not items:
        return None
    chosen = next((i for i in items if isinstance(i, dict) and i.get("primary")), items[0])
    return chosen.get("value") if isinstance(chosen, dict) else chosen


def wire(fields: dict[str, Any]) -> dict[str, Any]:
    """Mapped fields as Pipedrive's v2 body."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in fields.items():
        if name in LABELLED:
            body[LABELLED[name]] = labelled(value)
        elif _CUSTOM_FIELD.match(name):
            custom[name] = value
        elif name in INTEGER_FIELDS and isinstance(value, str) and value.strip().isdigit():
            body[name] = int(value)
        else:
            body[name] = value
    if custom:
        body["custom_fields"] = {**body.get("custom_fields", {}), **custom}
    return body


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """A Pipedrive record as the mapping names its fields (ownership checks, `fetch:`): the
    primary email and phone as `email` and `phone`, custom fields by their hash."""
    out = dict(record)
    for plain, listed in LABELLED.items():
        if listed in record:
            out[plain] = primary(record[listed])
    custom = record.get("custom_fields")
    if isinstance(custom, dict):
        out.update(custom)
    return out


class PipedriveConnector(Connector):
    name = "pipedrive"
    default_token_url = TOKEN_URL
    #: Pipedrive's access tokens live an hour (the answer says so in expires_in)
    default_token_lifetime = 3600.0
    token_client_auth = "basic"  # Pipedrive's token endpoint wants HTTP Basic
    lists_changes = True
    max_list_page = pipedrive_changes.MAX_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._usage_noted = 0.0

    @property
    def api_token(self) -> bool:
        return self.connection.auth.get("type") == "api_token"

    def auth_headers(self) -> dict[str, str]:
        if self.api_token:
            return {"x-api-token": self.environ.get(str(self.connection.auth["token_env"]), "")}
        return super().auth_headers()

    # the HTTP edge ----------------------------------------------------------------------
    def _send(self, method: str, url: str, token: str | None, **kwargs: Any) -> httpx.Response:
        if self.oauth is not None and url.startswith("/api/"):
            domain = self.oauth.last_state.instance_url  # the token answer's api_domain
            if domain:
                url = domain + url
        response = super()._send(method, url, token, **kwargs)
        self._note_budget(response)
        return response

    def _note_budget(self, response: httpx.Response) -> None:
        """The daily token budget's headers, kept for /metrics (at most once a second)."""
        limit = response.headers.get(pd.DAILY_LIMIT, "")
        left = response.headers.get(pd.DAILY_REMAINING, "")
        now = time.monotonic()
        if (
            self.memo is not None
            and limit.isdigit()
            and left.isdigit()
            and now - self._usage_noted >= 1.0
        ):
            self._usage_noted = now
            self.memo.record_usage(self.connection.name, int(limit) - int(left), int(limit))

    def classify(self, response: httpx.Response) -> None:
        pd.classify(response, api_token=self.api_token)

    # reading ----------------------------------------------------------------------------
    @classmethod
    def poll_problems(cls, poll: PollSpec) -> list[tuple[str, str]]:
        custom = [f for f in poll.fields if _CUSTOM_FIELD.match(f)]
        return pipedrive_changes.poll_problems(poll, custom)

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """The v2 list endpoint by `update_time` (connectors/pipedrive_changes.py)."""
        custom = [f for f in poll.fields if _CUSTOM_FIELD.match(f)]
        return pipedrive_changes.list_changes(self, poll, since, cursor, until, custom)

    def search(self, obj: str, field: str | None, value: Any) -> list[dict[str, Any]]:
        """The records whose `field` equals `value` exactly (without case), as the search
        answers them (`{id, name, emails, phones, ...}`)."""
        where = field if field in SEARCH_FIELDS.get(obj, ()) else "custom_fields"
        wanted = key_of(value)
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {
                "term": str(value).strip(),
                "fields": where,
                "exact_match": "true",
                "limit": 100,
            }
            if cursor:
                params["cursor"] = cursor
            body = pd.envelope(self.request("GET", f"{API}/{obj}/search", params=params))
            for hit in (body.get("data") or {}).get("items") or []:
                item = hit.get("item") or {}
                if _holds(item, where, wanted):
                    found.append(item)
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return found

    def find_id(self, record: MappedRecord) -> str | None:
        """The id of the record the match key names: remembered, else searched (and then
        remembered); several matches are ambiguous_match."""
        if record.match_value is None:
            return None
        key = key_of(record.match_value)
        if self.memo is not None:
            known = self.memo.related_ids(self.connection.name, record.object, [key])
            if key in known:
                return known[key]
        items = self.search(record.object, record.match_field, record.match_value)
        ids = sorted({str(i.get("id")) for i in items if i.get("id") is not None})
        if len(ids) > 1:
            raise pd.ambiguous(record.object, ids, record.match_field)
        if ids:
            self._remember(record, ids[0])
        return ids[0] if ids else None

    def _remember(self, record: MappedRecord, record_id: str) -> None:
        if self.memo is not None and record.match_value is not None:
            self.memo.remember_related(
                self.connection.name, record.object, {key_of(record.match_value): record_id}
            )

    def _forget(self, record: MappedRecord) -> None:
        if self.memo is not None and record.match_value is not None:
            self.memo.forget_related(
                self.connection.name, record.object, key_of(record.match_value)
            )

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        """The current record (for target-owned fields and update_only), read once."""
        record_id = self.find_id(record)
        if record_id is None:
            return None
        try:
            found = self.fetch(record.object, record_id, ())
        except DataError as exc:
            if exc.category != DeadCategory.SOURCE_RECORD_MISSING:
                raise
            self._forget(record)  # deleted or merged since it was remembered
            record_id = self.find_id(record)
            return flat(self.fetch(record.object, record_id, ())) if record_id else None
        return flat(found)

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        """`GET /api/v2/{object}/{id}`: the record (custom fields under `custom_fields`);
        gone: a dead letter `source_record_missing`."""
        if not str(record_id).isdigit():
            raise _missing(obj, record_id, None)
        response = self.request("GET", f"{API}/{obj}/{record_id}", ok=(404, 410))
        if response.status_code in (404, 410):
            raise _missing(obj, record_id, response)
        data = pd.envelope(response).get("data")
        return flat(data) if isinstance(data, dict) else {}

    # writing ----------------------------------------------------------------------------
    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        """Update the record the match key finds (remembered id or search), else create it;
        `action: create_only` creates without looking."""
        if record.action == "create_only":
            return self._create(record, fields)
        record_id = str(existing["id"]) if existing and existing.get("id") else None
        if record_id is None:
            record_id = self.find_id(record)
        if record_id is not None:
            result = self._update(record, record_id, fields)
            if result is not None:
                return result
            self._forget(record)  # Pipedrive no longer knows it: look again
            record_id = self.find_id(record)
            if record_id is not None:
                again = self._update(record, record_id, fields)
                if again is not None:
                    return again
                self._forget(record)
        return self._create(record, fields)

    def _update(
        self, record: MappedRecord, record_id: str, fields: dict[str, Any]
    ) -> WriteResult | None:
        """PATCH the record; None when Pipedrive no longer has it."""
        changes = dict(fields)
        if record.match_field in LABELLED and key_of(changes.get(record.match_field)) == key_of(
            record.match_value
        ):
            changes.pop(record.match_field)  # found by it: it is there; keep the rep's others
        body = wire(changes)
        if not body:
            return WriteResult("unchanged", None, record_id, "nothing to change")
        response = self.request(
            "PATCH", f"{API}/{record.object}/{record_id}", ok=(404, 410), json=body
        )
        if response.status_code in (404, 410):
            return None
        return WriteResult("updated", response.status_code, record_id, excerpt(response))

    def _create(self, record: MappedRecord, fields: dict[str, Any]) -> WriteResult:
        values = dict(fields)
        if record.match_field and record.match_value is not None:
            # the created record carries its match key, so the next search finds it
            values.setdefault(record.match_field, record.match_value)
        response = self.request("POST", f"{API}/{record.object}", json=wire(values))
        data = pd.envelope(response).get("data") or {}
        record_id = str(data.get("id")) if data.get("id") is not None else None
        if record_id is not None:
            self._remember(record, record_id)
        return WriteResult("created", response.status_code, record_id, excerpt(response))

    # related records --------------------------------------------------------------------
    def find_or_create(self, records: Sequence[MappedRecord]) -> list[str | HubError]:
        """The id of each related record (an organization by name, say): found by exact
        search and linked as it is (its fields are not rewritten), or created."""
        outcomes: list[str | HubError] = []
        for record in records:
            try:
                items = self.search(record.object, record.match_field, record.match_value)
                ids = sorted({str(i.get("id")) for i in items if i.get("id") is not None})
                if len(ids) > 1:
                    raise pd.ambiguous(record.object, ids, record.match_field)
                if ids:
                    outcomes.append(ids[0])
                    continue
                created = self._create(record, record.values())
                if created.record_id is None:
                    raise DataError(
                        f"Pipedrive created the {record.object} record without telling its id",
                        category=DeadCategory.REJECTED_BY_TARGET,
                        excerpt=created.excerpt,
                    )
                outcomes.append(created.record_id)
            except HubError as exc:
                outcomes.append(exc)
        return outcomes


def _holds(item: dict[str, Any], where: str, wanted: str) -> bool:
    """Whether a search hit really carries the value (exact search matches words)."""
    if where == "email":
        return any(key_of(v) == wanted for v in item.get("emails") or [])
    if where == "phone":
        return any(key_of(v) == wanted for v in item.get("phones") or [])
    if where == "name":
        return key_of(item.get("name")) == wanted
    return True  # custom fields, notes, address: the search's own exact match decides


def _missing(obj: str, record_id: str, response: httpx.Response | None) -> DataError:
    return DataError(
        f"Pipedrive has no {obj} {record_id} (deleted or merged?)",
        category=DeadCategory.SOURCE_RECORD_MISSING,
        status=response.status_code if response is not None else 404,
        excerpt=excerpt(response) if response is not None else "",
    )
