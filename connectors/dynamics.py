"""Dynamics 365 / Dataverse (Web API v9.2): contacts, accounts, any entity set, upserted on an
alternate key.

Auth: Microsoft Entra ID's client-credentials grant (`auth: {type: client_credentials,
token_url: https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token}`) with scope
`{base_url}/.default`. There is no refresh token: a new token is asked for before the last one
expires (`expires_in`, about an hour), and once after a 401; a refused request (`invalid_client`,
AADSTS7000215 a wrong secret, AADSTS7000222 an expired one) is an AuthError: the connection
pauses, holds its deliveries and alerts (connectors/oauth.py).
Source: https://learn.microsoft.com/power-apps/developer/data-platform/authenticate-oauth

Writes (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api#upsert-a-table-row):
`PATCH /api/data/v9.2/{entity set}({key}='{value}')`, the value an OData string literal (quotes
doubled) percent-encoded; the key must be an alternate key defined in Dataverse (declared under
the connection's `alternate_keys`: the configuration refuses a match field that is not one).
`action: upsert` sends no condition (create or update), `update_only` sends `If-Match: *` (a
missing record answers 404: skipped, nothing created), `create_only` `If-None-Match: *` (an
existing one answers 412: skipped, nothing overwritten). `Prefer: return=representation` says
created (201) or updated (200) and the record's id.

A backlog goes in one `$batch` (connectors/dynamics_batch.py), each record in a change set of
its own with `Prefer: odata.continue-on-error`: a change set is one transaction, so a bad record
rolls back only itself and the others are written. Target-owned fields are read once for the
whole batch (`$filter=key eq '..' or ...`). The session (auth, reads, sending):
connectors/dynamics_session.py; errors: connectors/dynamics_errors.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from connectors import dynamics_batch as batch
from connectors import dynamics_errors as dv
from connectors.base import EXCERPT_CHARS, WriteResult, unencodable
from connectors.dynamics_session import (
    API,
    DynamicsSession,
    addressable,
    key_of,
    key_segment,
    odata_literal,
    primary_key,
)
from core.errors import DataError, HubError, TransientError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty

__all__ = ["DynamicsConnector", "key_segment", "odata_literal"]

UPDATE_ONLY_MISSING = "update_only: no such record at the target"
CREATE_ONLY_EXISTS = "create_only: a record with this key exists; it is left as it is"
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


class DynamicsConnector(DynamicsSession):
    """The writes: upserts by alternate key, batches of change sets, related accounts."""

    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        """One record, `fields` already filtered for ownership; `existing` the record when it
        was read (a key a URL cannot carry is looked up here if it was not)."""
        if existing is None and record.match_value is not None and not addressable(record):
            existing = self.read(record)
        plan = self._plan(record, fields, existing)
        if isinstance(plan, WriteResult):
            return plan
        [answer] = self._send_parts([plan])
        outcome = answer if isinstance(answer, HubError) else self._outcome(record, answer, plan)
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    def deliver(self, record: MappedRecord) -> WriteResult:
        """One record goes the batch's way (a plain request instead of a $batch)."""
        [outcome] = self.deliver_batch([record])
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    def deliver_batch(self, records: Sequence[MappedRecord]) -> list[WriteResult | HubError]:
        """Every record's outcome, in order: the records that need reading (target-owned
        fields, a key a URL cannot carry) read once per object and key, then one $batch (a
        change set per record) per BATCH_LIMIT records. A key a URL cannot carry that comes
        twice waits for the next round, after the first has created the record."""
        outcomes: dict[int, WriteResult | HubError] = {}
        pending = list(range(len(records)))
        while pending:
            seen: set[tuple[str, str]] = set()
            now: list[int] = []
            later: list[int] = []
            for index in pending:
                record = records[index]
                key = (record.object, key_of(record.match_value))
                looked_up = record.match_value is not None and not addressable(record)
                (later if looked_up and key in seen else now).append(index)
                if looked_up:
                    seen.add(key)
            outcomes.update(self._round(records, now))
            pending = later
        return [outcomes[i] for i in range(len(records))]

    def _round(
        self, records: Sequence[MappedRecord], indexes: list[int]
    ) -> dict[int, WriteResult | HubError]:
        outcomes: dict[int, WriteResult | HubError] = {}
        current: dict[int, dict[str, Any] | None] = {}
        reads: dict[tuple[str, str], list[int]] = {}
        for index in indexes:
            record = records[index]
            keyed = record.match_field is not None and record.match_value is not None
            if keyed and (record.target_owned or not addressable(record)):
                reads.setdefault((record.object, str(record.match_field)), []).append(index)
        for (entity_set, field), group in reads.items():
            owned = sorted({n for i in group for n in records[i].target_owned})
            try:
                rows = self.find(entity_set, field, [records[i].match_value for i in group], owned)
            except HubError as exc:
                outcomes.update(dict.fromkeys(group, exc))
                continue
            for i in group:
                current[i] = rows.get(key_of(records[i].match_value))
        pending: list[tuple[int, batch.Part, tuple[str, ...]]] = []
        for index in indexes:
            if index in outcomes:
                continue
            record, existing = records[index], current.get(index)
            skipped = tuple(
                n for n in record.target_owned if existing and not is_empty(existing.get(n))
            )
            fields = {k: v for k, v in record.values().items() if k not in skipped}
            plan = self._plan(record, fields, existing)
            if isinstance(plan, WriteResult):
                outcomes[index] = plan
                continue
            try:
                batch.encoded(plan)
            except UnicodeEncodeError as exc:
                outcomes[index] = unencodable(exc, f"{self.name} connector")
                continue
            pending.append((index, plan, skipped))
        for start in range(0, len(pending), batch.BATCH_LIMIT):
            chunk = pending[start : start + batch.BATCH_LIMIT]
            answers = self._send_parts([plan for _, plan, _ in chunk])
            for (index, plan, skipped), answer in zip(chunk, answers, strict=True):
                if isinstance(answer, HubError):
                    outcomes[index] = answer
                    continue
                outcome = self._outcome(records[index], answer, plan)
                if isinstance(outcome, WriteResult) and skipped:
                    outcome = replace(outcome, skipped_fields=skipped)
                outcomes[index] = outcome
        return outcomes

    def _plan(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> batch.Part | WriteResult:
        """The request writing the record, or its outcome when none is needed. By alternate
        key in the URL (the mode as a condition); for a key value a URL cannot carry, by
        the id the lookup (`existing`) found, or a create with the key in the body."""
        values = self._wire(record, fields)
        pk = primary_key(record.object)
        headers = {"Prefer": "return=representation"}
        collection = f"{API}/{record.object}"
        if record.match_field is None or record.match_value is None:
            return batch.Part("POST", f"{collection}?$select={pk}", values, headers)
        if addressable(record):
            values.pop(record.match_field, None)  # the key is in the URL
            if record.action == "update_only":
                headers["If-Match"] = "*"
            elif record.action == "create_only":
                headers["If-None-Match"] = "*"
            segment = key_segment(record.match_field, record.match_value)
            return batch.Part("PATCH", f"{collection}{segment}?$select={pk}", values, headers)
        written = tuple(fields)
        if existing is not None:
            if record.action == "create_only":
                return WriteResult("skipped", excerpt=CREATE_ONLY_EXISTS, skipped_fields=written)
            values.pop(record.match_field, None)
            headers["If-Match"] = "*"  # update only: never re-create a record deleted since
            row_id = quote(str(existing[pk]), safe="")
            return batch.Part("PATCH", f"{collection}({row_id})?$select={pk}", values, headers)
        if record.action == "update_only":
            return WriteResult("skipped", excerpt=UPDATE_ONLY_MISSING, skipped_fields=written)
        values[record.match_field] = record.match_value
        return batch.Part("POST", f"{collection}?$select={pk}", values, headers)

    def _outcome(
        self, record: MappedRecord, answer: batch.Answer, plan: batch.Part
    ) -> WriteResult | HubError:
        status = answer.status
        written = tuple(plan.body or ())
        if record.match_field and f"({record.match_field}=" in plan.url:
            written += (record.match_field,)  # the key, written through the URL
        if status == 404 and record.action == "update_only":
            return WriteResult(
                "skipped", status, excerpt=UPDATE_ONLY_MISSING, skipped_fields=written
            )
        if status == 412 and record.action == "create_only":
            return WriteResult(
                "skipped", status, excerpt=CREATE_ONLY_EXISTS, skipped_fields=written
            )
        if status >= 300:
            error = dv.error_for(answer.response())
            if error is not None:
                return self._name_link(record, error)
        record_id = self._record_id(record.object, answer)
        operation = "updated" if status == 200 else "created"
        if status == 204:  # no representation: an upsert does not say which
            operation = "created" if plan.method == "POST" else "updated"
        text = answer.content[:EXCERPT_CHARS].decode("utf-8", "replace")
        return WriteResult(operation, status, record_id, text, (), written)

    def _record_id(self, entity_set: str, answer: batch.Answer) -> str | None:
        if answer.content:
            try:
                body = json.loads(answer.content)
            except ValueError:
                body = {}
            if isinstance(body, dict) and body.get(primary_key(entity_set)):
                return str(body[primary_key(entity_set)])
        match = _ENTITY_ID.search(answer.headers.get("odata-entityid", ""))
        return match.group(1) if match else None

    def _name_link(self, record: MappedRecord, error: HubError) -> HubError:
        """A bound record that is gone (0x80040217 naming its table): the problem is the link
        field's, so the hub forgets the remembered id and finds or creates it again."""
        if not isinstance(error, DataError) or not record.related:
            return error
        said = str(error).lower()
        for link, related in record.related:
            table = related.object.rstrip("s")
            if dv.RECORD_MISSING in said and table in said:
                error.problems = [
                    {**p, "field": link} for p in error.problems or [{"problem": str(error)}]
                ]
        return error

    def _wire(self, record: MappedRecord, fields: dict[str, Any]) -> dict[str, Any]:
        """Values as the Web API takes them: dates yyyy-MM-dd, datetimes ISO 8601 UTC,
        multi-select choices comma-joined, a related record's id as `/{entity set}({id})`
        on a `...@odata.bind` link."""
        out: dict[str, Any] = {}
        links = {link: related.object for link, related in record.related}
        for name, value in fields.items():
            if isinstance(value, datetime):
                value = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, list):
                value = ",".join(str(v) for v in value)
            bare_id = isinstance(value, str) and not value.startswith("/")
            if name in links and name.endswith("@odata.bind") and bare_id:
                value = f"/{links[name]}({value})"
            out[name] = value
        return out

    # related records ------------------------------------------------------------------
    def find_or_create(self, records: Sequence[MappedRecord]) -> list[str | HubError]:
        """The id of each related record (one entity set and key): one read for all, then
        one upsert (a $batch for several) on the alternate key for the missing ones; an
        existing record is linked as it is (its fields are not rewritten)."""
        first = records[0]
        field = first.match_field
        if field is None:
            return super().find_or_create(records)
        try:
            existing = self.find(first.object, field, [r.match_value for r in records])
        except HubError as exc:
            return [exc] * len(records)
        out: list[str | HubError | None] = []
        missing: list[MappedRecord] = []
        for record in records:
            row = existing.get(key_of(record.match_value))
            if row is not None:
                out.append(str(row[primary_key(first.object)]))
            else:
                out.append(None)
                missing.append(record)
        plans = [self._plan(r, r.values(), None) for r in missing]
        sendable = [p for p in plans if isinstance(p, batch.Part)]
        answers = iter(self._send_parts(sendable) if sendable else [])
        made: dict[int, str | HubError] = {}
        for record, plan in zip(missing, plans, strict=True):
            if not isinstance(plan, batch.Part):
                made[id(record)] = DataError(
                    f"{record.object} {record.match_value}: {plan.excerpt}"
                )
                continue
            answer = next(answers)
            outcome = (
                answer if isinstance(answer, HubError) else self._outcome(record, answer, plan)
            )
            if isinstance(outcome, HubError):
                made[id(record)] = outcome
            elif outcome.record_id is None:
                made[id(record)] = TransientError("Dataverse did not say the new record's id")
            else:
                made[id(record)] = outcome.record_id
        result: list[str | HubError] = []
        for record, known in zip(records, out, strict=True):
            result.append(known if known is not None else made[id(record)])
        return result
