"""Salesforce's REST API as a session: OAuth2 at `login_url` (refresh token or client
credentials), calls at the token's `instance_url`, every answer classified per errorCode
(connectors/salesforce_errors.py), `Sforce-Limit-Info` kept for /metrics, the daily-limit
probe shared by every worker, and the reads: SOQL lookups batched as `IN (...)`, fetches.
connectors/salesforce.py builds the writes on it.

Source: https://developer.salesforce.com/docs/atlas.en-us.222.0.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm
(token answer: access_token, instance_url, no expires_in),
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors import salesforce_errors as sf
from connectors.base import Connector, excerpt
from core.changes import ChangePage, Listed, Stamp
from core.config.polling import PollSpec
from core.errors import DataError, HubError, RateLimited, TransientError
from core.mapping import MappedRecord
from core.vocabulary import DeadCategory

LOGIN_URL = "https://login.salesforce.com"
API_VERSION = "62.0"
#: a SOQL query travels in the URL: keep each well under Salesforce's 16,384-character limit
MAX_QUERY_CHARS = 10_000
#: the longest the daily-limit probe backs off to, unless `options.limit_probe_max_seconds`
DEFAULT_PROBE_CAP_SECONDS = 3600.0
#: how long a request waits while another one probes the daily limit
PROBE_WAIT_SECONDS = 2.0
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MS_PER_DAY = 86_400_000
#: a query's batch size (`Sforce-Query-Options: batchSize=`) is 200 to 2,000: a smaller
#: `page_size` still gets pages of 200
MIN_QUERY_BATCH, MAX_QUERY_BATCH = 200, 2000


def soql_datetime(ms: int) -> str:
    """An instant as a SOQL datetime literal (unquoted, UTC): 2024-05-01T12:00:00.000Z."""
    return Stamp.at(ms).text


def soql_literal(value: Any) -> str:
    """A value as a quoted SOQL string, escaped as SOQL requires (quotes, backslashes,
    control characters), so a match value can never change the query."""
    text = str(value)
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in text) + "'"


def key_of(value: Any) -> str:
    """Match values compare as SOQL's `=` does: without case."""
    return str(value if value is not None else "").strip().lower()


class SalesforceSession(Connector):
    """The connection's API session and reads; SalesforceConnector adds the writes."""

    name = "salesforce"
    lists_changes = True
    max_list_page = MAX_QUERY_BATCH
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

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """`SELECT ... FROM {object} WHERE {stamp} >= {since} ORDER BY {stamp}, Id` in batches
        of `page_size` (the `Sforce-Query-Options` header); `cursor` is the answer's
        `nextRecordsUrl` (queryMore), which continues the same query.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm"""
        stamp, key = poll.cursor, poll.id_field or "Id"
        batch = max(MIN_QUERY_BATCH, min(MAX_QUERY_BATCH, poll.page_size))
        headers = {"Sforce-Query-Options": f"batchSize={batch}"}
        if cursor:
            body = self.request("GET", cursor, headers=headers).json()
        else:
            columns = ", ".join(dict.fromkeys([key, stamp, *poll.fields]))
            where = f"{stamp} >= {soql_datetime(since.ms)}"
            if until is not None:
                where += f" AND {stamp} <= {soql_datetime(until.ms)}"
            soql = f"SELECT {columns} FROM {poll.object} WHERE {where} ORDER BY {stamp}, {key}"
            body = self.request(
                "GET", self.data("/query"), params={"q": soql}, headers=headers
            ).json()
        listed = []
        for row in body.get("records") or []:
            record = {k: v for k, v in row.items() if k != "attributes"}
            listed.append(Listed(str(record.get(key)), str(record.get(stamp) or ""), record))
        more = None if body.get("done", True) else body.get("nextRecordsUrl")
        return ChangePage(listed, str(more) if more else None)

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
                    found.setdefault(key_of(record.get(field)), []).append(record)
                chunk, size = [], len(head)
            if value is not None:
                chunk.append(literal)
                size += len(literal) + 2
        return found

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        field = record.match_field or "Id"
        matches = self.find(record.object, field, [record.match_value], record.target_owned)
        rows = matches.get(key_of(record.match_value), [])
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

    def fetch_requests(self, count: int) -> int:
        # an id in the query's IN list is at most 22 characters ('18 characters', )
        return -(-count * 22 // MAX_QUERY_CHARS)

    def fetch_many(
        self, obj: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any] | HubError]:
        """One SOQL query for many ids (`WHERE Id IN (...)`); an id not found is a dead letter
        `source_record_missing`."""
        rows = self.find(obj, "Id", ids, properties)
        found: dict[str, dict[str, Any] | HubError] = {}
        for record_id in dict.fromkeys(ids):
            matched = rows.get(key_of(record_id))
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
