"""Salesforce (REST API): Contact, Account, any sObject, found or created on a match key.

Auth: OAuth2 against the connection's `login_url` (default https://login.salesforce.com;
sandboxes https://test.salesforce.com): the refresh-token flow (`auth: {type: oauth2}`) or the
client-credentials flow (`auth: {type: client_credentials}`). Calls go to the token answer's
`instance_url`. The answer has no `expires_in`: a token is used until a 401
`INVALID_SESSION_ID`, which gets one refresh and one retry (connectors/base.py); a refused
grant (`invalid_grant`) is an AuthError: pause, hold, alert. Rotated refresh tokens are stored
with their access token in one write (core/ledger/tokens.py), shared by every worker.
Source: https://developer.salesforce.com/docs/atlas.en-us.222.0.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm

Writes (https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html):
- `match: {external_id: true}`: upsert, `PATCH /sobjects/{object}/{field}/{value}` (201
  created, 200 updated; 300 Multiple Choices: dead letter `ambiguous_match` with the
  candidates);
- otherwise a SOQL query on the normalised match value, then `POST /sobjects/{object}` or
  `PATCH /sobjects/{object}/{Id}`; several records found: `ambiguous_match`, never a guess.
Backlogs go through sObject Collections (up to 200 records, `allOrNone: false`, results per
record; https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html),
the lookups batched as `WHERE field IN (...)`.

Formats (https://developer.salesforce.com/docs/atlas.en-us.264.0.api_rest.meta/api_rest/intro_valid_date_formats.htm):
dates YYYY-MM-DD, datetimes ISO 8601 with an offset, multi-select picklists `;`-joined.
The session (auth, the HTTP edge, the daily-limit probe, SOQL reads, fetches):
connectors/salesforce_session.py; errors: connectors/salesforce_errors.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from connectors import salesforce_errors as sf
from connectors.base import WriteResult, excerpt
from connectors.salesforce_session import SalesforceSession, key_of
from core.errors import HubError, TransientError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty

COLLECTION_LIMIT = 200


class SalesforceConnector(SalesforceSession):
    max_batch = COLLECTION_LIMIT

    # writing --------------------------------------------------------------------------
    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        """One record (the base class's deliver: `fields` already filtered for ownership,
        `existing` read when ownership or update_only needed it): an upsert on an External
        ID match field; else an update of the record the match key finds, or a create (never
        a blind one: the key is looked up first, and several matches are ambiguous_match)."""
        upsert = bool(record.external_id and record.match_field)
        if existing is None and not upsert and record.action != "create_only":
            existing = self.read(record) if record.match_value is not None else None
        values = {k: self._wire(record.object, k, v) for k, v in fields.items()}
        record_id = str(existing["Id"]) if existing and existing.get("Id") else None
        return self._write_one(
            record.object, record.match_field, record, values, (), record_id, upsert=upsert
        )

    def deliver_batch(self, records: Sequence[MappedRecord]) -> list[WriteResult | HubError]:
        """Every record's outcome, in order: records of one object and match key kind are
        looked up together and written through sObject Collections (single-record calls for
        a lone record). A key twice in the batch is written in a second round, after the
        first has created the record."""
        outcomes: dict[int, WriteResult | HubError] = {}
        groups: dict[tuple[str, str | None, bool, str], list[int]] = {}
        for index, record in enumerate(records):
            kind = (record.object, record.match_field, record.external_id, record.action)
            groups.setdefault(kind, []).append(index)
        for indexes in groups.values():
            pending = indexes
            while pending:
                seen: set[str] = set()
                now: list[int] = []
                later: list[int] = []
                for index in pending:
                    key = key_of(records[index].match_value)
                    (later if key in seen else now).append(index)
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
        obj, field = first.object, first.match_field
        owned = sorted({name for r in records for name in r.target_owned})
        lookup = field is not None and first.action != "create_only"
        existing = (
            self.find(obj, field or "Id", [r.match_value for r in records], owned)
            if lookup and (owned or not first.external_id or first.action == "update_only")
            else {}
        )
        plans: list[tuple[MappedRecord, dict[str, Any], tuple[str, ...], str | None]] = []
        outcomes: list[WriteResult | HubError | None] = []
        for record in records:
            rows = existing.get(key_of(record.match_value), [])
            if len(rows) > 1:
                outcomes.append(sf.ambiguous([str(r.get("Id")) for r in rows], "", field))
                continue
            current = rows[0] if rows else None
            if record.action == "update_only" and current is None:
                outcomes.append(
                    WriteResult("skipped", excerpt="update_only: no such record at the target")
                )
                continue
            skipped = tuple(
                n for n in record.target_owned if current and not is_empty(current.get(n))
            )
            values = {
                k: self._wire(obj, k, v) for k, v in record.values().items() if k not in skipped
            }
            plans.append((record, values, skipped, current.get("Id") if current else None))
            outcomes.append(None)
        written = iter(self._send_plans(obj, field, plans) if plans else [])
        return [o if o is not None else next(written) for o in outcomes]

    def _send_plans(
        self,
        obj: str,
        field: str | None,
        plans: list[tuple[MappedRecord, dict[str, Any], tuple[str, ...], str | None]],
    ) -> list[WriteResult | HubError]:
        results: list[WriteResult | HubError] = []
        upsert = plans[0][0].external_id and field is not None
        for start in range(0, len(plans), COLLECTION_LIMIT):
            chunk = plans[start : start + COLLECTION_LIMIT]
            if len(chunk) == 1:
                try:
                    results.append(self._write_one(obj, field, *chunk[0], upsert=upsert))
                except HubError as exc:
                    results.append(exc)
                continue
            results += self._write_collection(obj, field, chunk, upsert=upsert)
        return results

    def _write_one(
        self,
        obj: str,
        field: str | None,
        record: MappedRecord,
        values: dict[str, Any],
        skipped: tuple[str, ...],
        record_id: str | None,
        *,
        upsert: bool,
    ) -> WriteResult:
        written = tuple(values)
        if upsert and field is not None and record_id is None:
            body = {k: v for k, v in values.items() if k != field}
            url = self.data(f"/sobjects/{obj}/{field}/{quote(str(record.match_value), safe='')}")
            response = self.request("PATCH", url, json=body)
            answer = response.json() if response.content else {}
            operation = (
                "created" if answer.get("created", response.status_code == 201) else "updated"
            )
            return WriteResult(
                operation,
                response.status_code,
                answer.get("id"),
                excerpt(response),
                skipped,
                written,
            )
        if record_id is not None:
            url = self.data(f"/sobjects/{obj}/{quote(record_id, safe='')}")
            response = self.request("PATCH", url, json=values)
            return WriteResult(
                "updated", response.status_code, record_id, excerpt(response), skipped, written
            )
        values = self._with_key(record, values)
        response = self.request("POST", self.data(f"/sobjects/{obj}"), json=values)
        return WriteResult(
            "created",
            response.status_code,
            response.json().get("id"),
            excerpt(response),
            skipped,
            tuple(values),
        )

    def _with_key(self, record: MappedRecord, values: dict[str, Any]) -> dict[str, Any]:
        """A created record carries its match key, so the next lookup finds it."""
        if (
            record.match_field
            and record.match_value is not None
            and record.match_field not in values
        ):
            return {**values, record.match_field: record.match_value}
        return values

    def _write_collection(
        self,
        obj: str,
        field: str | None,
        plans: list[tuple[MappedRecord, dict[str, Any], tuple[str, ...], str | None]],
        *,
        upsert: bool,
    ) -> list[WriteResult | HubError]:
        """One or two sObject Collections requests (creates; updates), results mapped back."""
        attributes = {"attributes": {"type": obj}}
        if upsert:
            calls = [
                (
                    "PATCH",
                    self.data(f"/composite/sobjects/{obj}/{field}"),
                    list(range(len(plans))),
                    [{**attributes, **p[1], str(field): p[0].match_value} for p in plans],
                )
            ]
        else:
            creates = [i for i, p in enumerate(plans) if p[3] is None]
            updates = [i for i, p in enumerate(plans) if p[3] is not None]
            calls = []
            if creates:
                calls.append(
                    (
                        "POST",
                        self.data("/composite/sobjects"),
                        creates,
                        [
                            {**attributes, **self._with_key(plans[i][0], plans[i][1])}
                            for i in creates
                        ],
                    )
                )
            if updates:
                calls.append(
                    (
                        "PATCH",
                        self.data("/composite/sobjects"),
                        updates,
                        [{**attributes, **plans[i][1], "Id": plans[i][3]} for i in updates],
                    )
                )
        outcomes: dict[int, WriteResult | HubError] = {}
        for method, url, indexes, body in calls:
            try:
                response = self.request(method, url, json={"allOrNone": False, "records": body})
            except HubError as exc:
                outcomes.update(dict.fromkeys(indexes, exc))
                continue
            answers = response.json()
            if not isinstance(answers, list) or len(answers) != len(indexes):
                error = TransientError(
                    "Salesforce's collection answer does not list every record",
                    status=response.status_code,
                    excerpt=excerpt(response),
                )
                outcomes.update(dict.fromkeys(indexes, error))
                continue
            for index, sent, answer in zip(indexes, body, answers, strict=True):
                _, _, skipped, record_id = plans[index]
                if not answer.get("success"):
                    outcomes[index] = self._item_error(
                        answer.get("errors") or [], response.status_code
                    )
                    continue
                created = answer.get("created", method == "POST")
                outcomes[index] = WriteResult(
                    "created" if created else "updated",
                    response.status_code,
                    answer.get("id") or record_id,
                    str(answer)[:300],
                    skipped,
                    tuple(k for k in sent if k not in ("attributes", "Id")),
                )
        return [outcomes[i] for i in range(len(plans))]

    def _wire(self, obj: str, name: str, value: Any) -> Any:
        """A value in Salesforce's format: lists `;`-joined (multi-select picklists), dates
        YYYY-MM-DD, datetimes ISO 8601 with an offset (epoch milliseconds converted when
        the connection's field spec says date or datetime)."""
        spec = self.connection.objects.get(obj)
        kind = spec.fields[name].type if spec and name in spec.fields else None
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if kind in ("date", "datetime") and isinstance(value, int) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value / 1000, UTC)
            return moment.date().isoformat() if kind == "date" else moment.isoformat()
        return value

    # related records ------------------------------------------------------------------
    def find_or_create(self, records: Sequence[MappedRecord]) -> list[str | HubError]:
        """The Id of each related record (one object and match field): one query for all,
        then one collection create for the missing ones; an existing record is linked as it
        is (its fields are not rewritten)."""
        first = records[0]
        field = first.match_field or "Id"
        existing = self.find(first.object, field, [r.match_value for r in records])
        outcomes: list[str | HubError | None] = []
        missing: list[tuple[MappedRecord, dict[str, Any], tuple[str, ...], str | None]] = []
        for record in records:
            rows = existing.get(key_of(record.match_value), [])
            if len(rows) > 1:
                outcomes.append(sf.ambiguous([str(r.get("Id")) for r in rows], "", field))
            elif rows:
                outcomes.append(str(rows[0]["Id"]))
            else:
                values = {k: self._wire(first.object, k, v) for k, v in record.values().items()}
                missing.append((record, values, (), None))
                outcomes.append(None)
        created = iter(self._send_plans(first.object, field, missing) if missing else [])
        out: list[str | HubError] = []
        for outcome in outcomes:
            if outcome is None:
                result = next(created)
                if isinstance(result, WriteResult):
                    out.append(str(result.record_id))
                else:
                    out.append(result)
            else:
                out.append(outcome)
        return out
