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
Errors: connectors/salesforce_errors.py. Every answer's `Sforce-Limit-Info` is kept for
/metrics (headers_api_usage.htm).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from connectors import salesforce_errors as sf
from connectors.base import Connector, WriteResult, excerpt
from core.errors import DataError, HubError, RateLimited, TransientError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty
from core.vocabulary import DeadCategory

LOGIN_URL = "https://login.salesforce.com"
API_VERSION = "62.0"
COLLECTION_LIMIT = 200
#: a SOQL query travels in the URL: keep each well under Salesforce's 16,384-character limit
MAX_QUERY_CHARS = 10_000
#: the longest the daily-limit probe backs off to, unless `options.limit_probe_max_seconds`
DEFAULT_PROBE_CAP_SECONDS = 3600.0
#: how long a request waits while another one probes the daily limit
PROBE_WAIT_SECONDS = 2.0
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MS_PER_DAY = 86_400_000


def soql_literal(value: Any) -> str:
    """A value as a quoted SOQL string, escaped as SOQL requires (quotes, backslashes,
    control characters), so a match value can never change the query."""
    text = str(value)
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in text) + "'"


def _key(value: Any) -> str:
    """Match values compare as SOQL's `=` does: without case."""
    return str(value if value is not None else "").strip().lower()


class SalesforceConnector(Connector):
    name = "salesforce"
    max_batch = COLLECTION_LIMIT
    #: Salesforce's token answer has no expires_in; its session timeout is two hours by
    #: default: a token older than this is renewed before use, a sooner 401 renews it too
    default_token_lifetime = 7200.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = self.connection.api_version or API_VERSION
        self.probe_cap = float(
            self.connection.options.get("limit_probe_max_seconds", DEFAULT_PROBE_CAP_SECONDS)
        )
        self._usage_noted = 0.0

    def token_endpoint(self) -> str:
        return f"{self.connection.login_url or LOGIN_URL}/services/oauth2/token"

    def data(self, path: str) -> str:
        return f"/services/data/v{self.version}{path}"

    # the HTTP edge ----------------------------------------------------------------------
    def request(
        self, method: str, url: str, *, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """While the org's daily limit is refused, exactly one request (across every worker)
        probes it; the others wait for its outcome without a request of their own."""
        probing = False
        if self.memo is not None and url.startswith("/services/data/"):
            name = self.connection.name
            if self.memo.limited(name):
                probing = self.memo.take_probe(name, self.connection.timeout_seconds * 2 + 5)
                if not probing:
                    raise RateLimited(
                        "Salesforce's daily API limit was used up; another request is probing "
                        f"it, waiting {PROBE_WAIT_SECONDS:.0f} s for its outcome",
                        status=403,
                        retry_after=PROBE_WAIT_SECONDS,
                    )
        passed = False
        try:
            response = super().request(method, url, ok=ok, **kwargs)
            passed = True
            return response
        except TransientError:
            raise  # refused again (or no answer): the backoff decides when to probe again
        except HubError:
            passed = True  # Salesforce took the request: the limit passed
            raise
        finally:
            if probing and self.memo is not None:
                if passed:
                    self.memo.limit_passed(self.connection.name)  # everyone drains now
                else:
                    self.memo.probe_done(self.connection.name)

    def _send(self, method: str, url: str, token: str | None, **kwargs: Any) -> httpx.Response:
        if self.oauth is not None and url.startswith("/services/data/"):
            url = self.oauth.last_state.instance_url + url
        response = super()._send(method, url, token, **kwargs)
        self._note_usage(response)
        return response

    def _note_usage(self, response: httpx.Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        now = time.monotonic()
        if match and self.memo is not None and now - self._usage_noted >= 1.0:
            self._usage_noted = now
            self.memo.record_usage(self.connection.name, int(match[1]), int(match[2]))

    def classify(self, response: httpx.Response) -> None:
        probe = None
        if response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.content:
            probe = (
                self.memo.limit_refused(
                    self.connection.name, sf.FIRST_PROBE_SECONDS, self.probe_cap
                )
                if self.memo is not None
                else sf.FIRST_PROBE_SECONDS
            )
        sf.classify(response, probe)

    def _item_error(self, errors: list[dict[str, Any]], status: int) -> HubError:
        if not errors:
            return TransientError("Salesforce's answer did not say what became of this record")
        return sf.error_for(errors[0], status=status, text=str(errors)[:500])

    # reading --------------------------------------------------------------------------
    def query(self, soql: str) -> list[dict[str, Any]]:
        response = self.request("GET", self.data("/query"), params={"q": soql})
        body = response.json()
        records: list[dict[str, Any]] = list(body.get("records") or [])
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self.request("GET", str(body["nextRecordsUrl"])).json()
            records += body.get("records") or []
        return records

    def find(
        self, obj: str, field: str, values: Sequence[Any], columns: Sequence[str] = ()
    ) -> dict[str, list[dict[str, Any]]]:
        """The records whose `field` equals one of `values` (without case), by value; as few
        queries as the URL length allows."""
        wanted = list(dict.fromkeys(str(v) for v in values if v is not None))
        selected = ", ".join(dict.fromkeys(["Id", field, *columns]))
        head = f"SELECT {selected} FROM {obj} WHERE {field} IN ("
        found: dict[str, list[dict[str, Any]]] = {}
        chunk: list[str] = []
        size = len(head)
        for value in [*wanted, None]:
            literal = soql_literal(value) if value is not None else ""
            if chunk and (value is None or size + len(literal) + 2 > MAX_QUERY_CHARS):
                for record in self.query(head + ", ".join(chunk) + ")"):
                    found.setdefault(_key(record.get(field)), []).append(record)
                chunk, size = [], len(head)
            if value is not None:
                chunk.append(literal)
                size += len(literal) + 2
        return found

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        field = record.match_field or "Id"
        matches = self.find(record.object, field, [record.match_value], record.target_owned)
        rows = matches.get(_key(record.match_value), [])
        if len(rows) > 1:
            raise sf.ambiguous([str(r.get("Id")) for r in rows], "", field)
        return rows[0] if rows else None

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        params = {"fields": ",".join(properties)} if properties else None
        url = self.data(f"/sobjects/{obj}/{quote(record_id, safe='')}")
        response = self.request("GET", url, ok=(404,), params=params)
        if response.status_code == 404:
            raise DataError(
                f"Salesforce has no {obj} {record_id} (deleted?)",
                category=DeadCategory.SOURCE_RECORD_MISSING,
                status=404,
                excerpt=excerpt(response),
            )
        body: dict[str, Any] = response.json()
        return body

    def fetch_many(
        self, obj: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any] | HubError]:
        """One SOQL query for many ids (`WHERE Id IN (...)`); an id not found is a dead letter
        `source_record_missing`."""
        rows = self.find(obj, "Id", ids, properties)
        found: dict[str, dict[str, Any] | HubError] = {}
        for record_id in dict.fromkeys(ids):
            matched = rows.get(_key(record_id))
            found[record_id] = (
                matched[0]
                if matched
                else DataError(
                    f"Salesforce has no {obj} {record_id} (deleted?)",
                    category=DeadCategory.SOURCE_RECORD_MISSING,
                    status=404,
                )
            )
        return found

    # writing --------------------------------------------------------------------------
    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:  # pragma: no cover - deliver() is overridden as a whole
        raise NotImplementedError

    def deliver(self, record: MappedRecord) -> WriteResult:
        (outcome,) = self.deliver_batch([record])
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

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
                    key = _key(records[index].match_value)
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
            rows = existing.get(_key(record.match_value), [])
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
            rows = existing.get(_key(record.match_value), [])
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
