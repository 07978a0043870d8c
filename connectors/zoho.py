"""Zoho CRM (REST API v8): Contacts, Accounts, Leads, written by upsert on the match key.

Auth: OAuth2 with a Self Client's refresh token against the connection's `accounts_url` (the
customer's data centre: https://accounts.zoho.com, .eu, .in, ...), `POST /oauth/v2/token`;
calls go to the token answer's `api_domain` with `Authorization: Zoho-oauthtoken <token>`
(connectors/zoho_session.py). A refresh answered `{"error": "invalid_code"}` with HTTP 200 is
an AuthError (connectors/oauth.py reads the body, not the status); a 401 `INVALID_TOKEN` gets
exactly one refresh and one retry (connectors/base.py).

Writes (https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html):
`POST /crm/v8/{module}/upsert` with `{"data": [...], "duplicate_check_fields": [match field]}`,
up to 100 records per request (a backlog fills them: deliver_batch, max_batch); the answer
lists one result per record, in order (HTTP 200 all written, 207 mixed, 400 all refused):
`{"code": "SUCCESS", "action": "insert" | "update", "details": {"id", ...}}` or a record's
error `{"code": "INVALID_DATA", "details": {"api_name", "json_path", ...}}`, mapped back to
its record (connectors/zoho_errors.py). A key twice in one backlog is written in a second
round, after the first has created the record. With no match key, records are inserted
(`POST /crm/v8/{module}`). Target-owned fields and `update_only` read the records first, one
search per ten keys; `create_only` reads them too and skips the ones that exist.

Formats: dates yyyy-MM-dd, datetimes ISO 8601 with an offset and no fractions
(2018-03-28T10:32:45+05:30), multi-select picklists as JSON arrays; a `related:` link is a
lookup, written as `{"id": ...}` (Contacts.Account_Name is the Account).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from connectors import zoho_errors as zoho
from connectors.base import WriteResult
from connectors.zoho_session import API_PATH, ZohoSession, ambiguous, key_of
from core.errors import HubError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty

#: records per insert/upsert request (Zoho's limit)
UPSERT_LIMIT = 100

#: (the record, its values as Zoho takes them, the target-owned fields kept)
Plan = tuple[MappedRecord, dict[str, Any], tuple[str, ...]]


class ZohoConnector(ZohoSession):
    max_batch = UPSERT_LIMIT

    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        """One record (the base class's deliver: `fields` already filtered for ownership,
        `existing` read when ownership or update_only needed it)."""
        if record.action == "create_only" and existing is None and record.match_value:
            existing = self.read(record)
        if record.action == "create_only" and existing is not None:
            return _exists(existing)
        plan = self._plan(record, fields)
        [outcome] = self._send_plans(record.object, record.match_field, [plan])
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    def deliver_batch(self, records: Sequence[MappedRecord]) -> list[WriteResult | HubError]:
        """Every record's outcome, in order: records of one module, match field and action
        are read together (when ownership or the action needs it) and written through one
        upsert per 100. A key twice in the batch waits for a second round."""
        outcomes: dict[int, WriteResult | HubError] = {}
        groups: dict[tuple[str, str | None, str], list[int]] = {}
        for index, record in enumerate(records):
            groups.setdefault((record.object, record.match_field, record.action), []).append(index)
        for indexes in groups.values():
            pending = indexes
            while pending:
                seen: set[str] = set()
                now: list[int] = []
                later: list[int] = []
                for index in pending:
                    key = key_of(records[index].match_value)
                    (later if key in seen and key else now).append(index)
                    seen.add(key)
                try:
                    results = self._write_group([records[i] for i in now])
                except HubError as exc:
                    results = [exc] * len(now)
                outcomes.update(zip(now, results, strict=True))
                pending = later
        return [outcomes[i] for i in range(len(records))]

    def _write_group(self, records: list[MappedRecord]) -> list[WriteResult | HubError]:
        first = records[0]
        module, field = first.object, first.match_field
        owned = sorted({name for r in records for name in r.target_owned})
        needs_read = bool(owned) or first.action in ("update_only", "create_only")
        existing = (
            self.search(module, field, [r.match_value for r in records], owned)
            if needs_read and field is not None
            else {}
        )
        plans: list[Plan] = []
        outcomes: list[WriteResult | HubError | None] = []
        for record in records:
            rows = existing.get(key_of(record.match_value), [])
            if len(rows) > 1:
                outcomes.append(ambiguous([str(r.get("id")) for r in rows], field))
                continue
            current = rows[0] if rows else None
            if record.action == "update_only" and current is None:
                outcomes.append(
                    WriteResult("skipped", excerpt="update_only: no such record at the target")
                )
                continue
            if record.action == "create_only" and current is not None:
                outcomes.append(_exists(current))
                continue
            skipped = tuple(
                n for n in record.target_owned if current and not is_empty(current.get(n))
            )
            fields = {k: v for k, v in record.values().items() if k not in skipped}
            plan = self._plan(record, fields)
            plans.append((record, plan[1], skipped))
            outcomes.append(None)
        written = iter(self._send_plans(module, field, plans) if plans else [])
        return [o if o is not None else next(written) for o in outcomes]

    def _plan(self, record: MappedRecord, fields: dict[str, Any]) -> Plan:
        """The record's values as Zoho takes them: wire formats, lookups as {"id": ...}, and
        the match key (so the duplicate check, and the next search, find it)."""
        links = {link for link, _ in record.related}
        values = {
            name: {"id": str(value)} if name in links and value else _wire(value)
            for name, value in fields.items()
        }
        if record.match_field and record.match_value is not None:
            values.setdefault(record.match_field, record.match_value)
        return record, values, ()

    def _send_plans(
        self, module: str, field: str | None, plans: list[Plan]
    ) -> list[WriteResult | HubError]:
        results: list[WriteResult | HubError] = []
        for start in range(0, len(plans), UPSERT_LIMIT):
            results += self._upsert(module, field, plans[start : start + UPSERT_LIMIT])
        return results

    def _upsert(
        self, module: str, field: str | None, plans: list[Plan]
    ) -> list[WriteResult | HubError]:
        """One request for up to 100 records, each result mapped back to its record."""
        body: dict[str, Any] = {"data": [values for _, values, _ in plans]}
        url = f"{API_PATH}/{quote(module, safe='')}"
        if field is not None:
            url += "/upsert"
            body["duplicate_check_fields"] = [field]
        trigger = self.connection.options.get("trigger")
        if trigger is not None:
            body["trigger"] = list(trigger)
        try:
            response = self.request("POST", url, json=body)
        except HubError as exc:
            return [exc] * len(plans)
        answers = (zoho.body_of(response) or {}).get("data")
        if not isinstance(answers, list) or len(answers) != len(plans):
            return [self.unanswered(response)] * len(plans)
        outcomes: list[WriteResult | HubError] = []
        for (_, values, skipped), answer in zip(plans, answers, strict=True):
            if not isinstance(answer, dict) or answer.get("status") != "success":
                error = answer if isinstance(answer, dict) else {}
                outcomes.append(
                    zoho.error_for(error, status=response.status_code, text=str(answer)[:500])
                )
                continue
            details = answer.get("details") or {}
            outcomes.append(
                WriteResult(
                    "created" if answer.get("action", "insert") == "insert" else "updated",
                    response.status_code,
                    str(details.get("id") or "") or None,
                    str(answer)[:300],
                    skipped,
                    tuple(values),
                )
            )
        return outcomes

    # related records ------------------------------------------------------------------
    def find_or_create(self, records: Sequence[MappedRecord]) -> list[str | HubError]:
        """The id of each related record (one module and match field): one search per ten
        keys, then one upsert for the missing ones; an existing record is linked as it is
        (its fields are not rewritten)."""
        first = records[0]
        field = first.match_field or "id"
        existing = self.search(first.object, field, [r.match_value for r in records])
        outcomes: list[str | HubError | None] = []
        missing: list[Plan] = []
        for record in records:
            rows = existing.get(key_of(record.match_value), [])
            if len(rows) > 1:
                outcomes.append(ambiguous([str(r.get("id")) for r in rows], field))
            elif rows:
                outcomes.append(str(rows[0]["id"]))
            else:
                missing.append(self._plan(record, record.values()))
                outcomes.append(None)
        created = iter(self._send_plans(first.object, first.match_field, missing))
        out: list[str | HubError] = []
        for outcome in outcomes:
            if outcome is None:
                result = next(created)
                out.append(str(result.record_id) if isinstance(result, WriteResult) else result)
            else:
                out.append(outcome)
        return out


def _exists(current: dict[str, Any]) -> WriteResult:
    return WriteResult(
        "skipped",
        record_id=str(current.get("id") or "") or None,
        excerpt="create_only: the record exists at the target",
    )


def _wire(value: Any) -> Any:
    """A value in Zoho's format: datetimes ISO 8601 with an offset and no fractions, dates
    yyyy-MM-dd; lists (multi-select picklists) stay JSON arrays."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.replace(microsecond=0).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
