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
whole batch (`$filter=key eq '..' or ...`). Errors: connectors/dynamics_errors.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from connectors import dynamics_batch as batch
from connectors import dynamics_errors as dv
from connectors.base import EXCERPT_CHARS, Connector, WriteResult, excerpt, unencodable
from core.config.model import ConnectionConfig, MappingConfig
from core.errors import DataError, HubError, TransientError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty
from core.vocabulary import DeadCategory

API = "/api/data/v9.2"
#: OData headers every request carries (the Web API refuses other versions)
ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}
#: records per $batch unless `options.batch_size` (Dataverse takes up to 1,000 requests;
#: smaller batches keep one request well inside the 2-minute execution limit)
DEFAULT_BATCH = 100
#: a $filter travels in the URL: keep each well under the Web API's URL limit
MAX_FILTER_CHARS = 6000
#: the primary key column of the common entity sets (others: the singular name + "id")
PRIMARY_KEYS = {"contacts": "contactid", "accounts": "accountid", "leads": "leadid"}
#: characters that make a key value unusable in a URL: "GET or PATCH actions won't work"
#: (https://learn.microsoft.com/power-apps/maker/data-platform/define-alternate-keys-portal);
#: such a record is looked up by $filter and written by its id, or created with POST
UNADDRESSABLE = frozenset("/#<>*%&:\\?+")
UPDATE_ONLY_MISSING = "update_only: no such record at the target"
CREATE_ONLY_EXISTS = "create_only: a record with this key exists; it is left as it is"
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def key_of(value: Any) -> str:
    """Alternate keys compare as Dataverse's collation does: without case."""
    return str(value if value is not None else "").strip().lower()


def odata_literal(value: Any) -> str:
    """A value as an OData string literal: single quotes doubled, so a value cannot end it."""
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(field: str, value: Any) -> str:
    """`(emailaddress1='a%40b.com')`: the literal percent-encoded for the path."""
    return f"({field}='{quote(str(value).replace(chr(39), chr(39) * 2), safe='')}')"


def addressable(record: MappedRecord) -> bool:
    """Whether the record's key value can go in a URL (else: look up, then write by id)."""
    return not (UNADDRESSABLE & set(str(record.match_value)))


def primary_key(entity_set: str) -> str:
    if entity_set in PRIMARY_KEYS:
        return PRIMARY_KEYS[entity_set]
    singular = entity_set[:-3] + "y" if entity_set.endswith("ies") else entity_set.rstrip("s")
    return f"{singular}id"


class DynamicsConnector(Connector):
    name = "dynamics"
    max_batch = batch.BATCH_LIMIT
    #: Entra ID answers expires_in; this is only for an answer without it
    default_token_lifetime = 3600.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.headers.update(ODATA_HEADERS)

    @classmethod
    def config_problems(
        cls, connection: ConnectionConfig, mappings: Sequence[MappingConfig]
    ) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        auth = connection.auth
        if auth.get("type") == "client_credentials" and not auth.get("token_url"):
            problems.append(
                (
                    f"connections.{connection.name}.auth.token_url",
                    "Dynamics authenticates at Microsoft Entra ID: set token_url to "
                    "https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token",
                )
            )
        for m in mappings:
            keyed = [(f"mappings.{m.name}.match.field", m.object, m.match)]
            keyed += [
                (f"mappings.{m.name}.related.{r.link}.match.field", r.object, r.match)
                for r in m.related
            ]
            for key, entity_set, match in keyed:
                if match is None:
                    continue
                declared = connection.alternate_keys.get(entity_set, ())
                if match.field not in declared:
                    problems.append(
                        (
                            key,
                            f"Dynamics upserts by alternate key, and {match.field!r} is not "
                            f"one declared for {entity_set!r} (declared: "
                            f"{', '.join(declared) or 'none'}); define the key in Dataverse "
                            f"(the table's Keys) and list it under connections."
                            f"{connection.name}.alternate_keys.{entity_set}",
                        )
                    )
        return problems

    def token_scope(self) -> str:
        return f"{self.connection.base_url}/.default"

    @property
    def batch_size(self) -> int:
        wanted = int(self.connection.options.get("batch_size", DEFAULT_BATCH))
        return max(1, min(self.max_batch, wanted))

    def classify(self, response: httpx.Response) -> None:
        dv.classify(response)

    # reading --------------------------------------------------------------------------
    def find(
        self, entity_set: str, field: str, values: Sequence[Any], columns: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """The records whose `field` equals one of `values` (without case), by value; as few
        requests as the URL length allows."""
        wanted = list(dict.fromkeys(str(v) for v in values if v is not None))
        select = ",".join(dict.fromkeys([primary_key(entity_set), field, *columns]))
        found: dict[str, dict[str, Any]] = {}
        chunk: list[str] = []
        for value in [*wanted, None]:
            clause = f"{field} eq {odata_literal(value)}" if value is not None else ""
            size = sum(len(c) + 4 for c in chunk) + len(clause)
            if chunk and (value is None or size > MAX_FILTER_CHARS):
                params = {"$select": select, "$filter": " or ".join(chunk)}
                response = self.request("GET", f"{API}/{entity_set}", params=params)
                for row in response.json().get("value") or []:
                    found[key_of(row.get(field))] = row
                chunk = []
            if value is not None:
                chunk.append(clause)
        return found

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        if record.match_field is None:
            return None
        rows = self.find(
            record.object, record.match_field, [record.match_value], record.target_owned
        )
        return rows.get(key_of(record.match_value))

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        params = {"$select": ",".join(properties)} if properties else None
        url = f"{API}/{obj}({quote(record_id, safe='')})"
        response = self.request("GET", url, ok=(404,), params=params)
        if response.status_code == 404:
            raise DataError(
                f"Dataverse has no {obj} {record_id} (deleted?)",
                category=DeadCategory.SOURCE_RECORD_MISSING,
                status=404,
                excerpt=excerpt(response),
            )
        body: dict[str, Any] = response.json()
        return body

    # writing --------------------------------------------------------------------------
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

    def _send_parts(self, parts: list[batch.Part]) -> list[batch.Answer | HubError]:
        """Each part's answer: a lone part as a plain request, several in one $batch."""
        try:
            if len(parts) == 1:
                [part] = parts
                response = self.request(
                    part.method,
                    part.url,
                    ok=tuple(range(400, 600)),
                    json=part.body,
                    headers=dict(part.headers),
                )
                return [batch.Answer.of(response)]
            content_type, body = batch.build(parts)
            response = self.request(
                "POST",
                f"{API}/$batch",
                content=body,
                headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
            )
        except HubError as exc:
            return [exc] * len(parts)
        answers: list[batch.Answer | HubError] = list(batch.parse(response))
        if len(answers) != len(parts):
            error = TransientError(
                f"Dataverse's $batch answer has {len(answers)} responses for {len(parts)} "
                "change sets",
                status=response.status_code,
                excerpt=excerpt(response),
            )
            return [error] * len(parts)
        return answers

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
