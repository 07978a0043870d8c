"""Zoho CRM's REST API (v8) as a session: OAuth2 at the data centre's accounts server, calls
at the token answer's `api_domain` with `Authorization: Zoho-oauthtoken`, every answer
classified once (connectors/zoho_errors.py), rate limits turned into a connection-wide
cooldown, and the reads: search on the match key (criteria in chunks), fetch by id.
connectors/zoho.py builds the writes on it.

Sources: https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html (one accounts server
per data centre: accounts.zoho.com, .eu, .in, .com.au, .jp, .com.cn, zohocloud.ca, .sa; the
token answer's api_domain is where calls go), https://www.zoho.com/crm/developer/docs/api/v8/token-validity.html
(access tokens live an hour), https://www.zoho.com/crm/developer/docs/api/v8/search-records.html
(criteria `(Field:equals:value)`, `or`, at most 10 criteria; `(`, `)` and `,` in a value
escaped with a backslash; 204 when nothing matches), https://www.zoho.com/crm/developer/docs/api/v8/get-records.html
(`ids`, at most 100, and `fields`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors import zoho_changes
from connectors import zoho_errors as zoho
from connectors.base import Connector, excerpt
from core.changes import ChangePage, Stamp
from core.config.polling import PollSpec
from core.errors import DataError, HubError
from core.mapping import MappedRecord
from core.vocabulary import DeadCategory

ACCOUNTS_URL = "https://accounts.zoho.com"
API_PATH = "/crm/v8"
#: Zoho's search takes at most 10 criteria joined by `or`
SEARCH_CRITERIA = 10
#: record ids per GET (Zoho's limit for `ids`)
IDS_PER_GET = 100
#: a 429 without a wait: the first cooldown, doubling while refused, up to the cap
FIRST_COOLDOWN_SECONDS = 5.0
DEFAULT_COOLDOWN_CAP_SECONDS = 3600.0
_ESCAPED = {"\\": "\\\\", "(": "\\(", ")": "\\)", ",": "\\,"}


def key_of(value: Any) -> str:
    """Match values compare without case and surrounding blanks, as Zoho's duplicate check
    on Email and its search do."""
    return str(value if value is not None else "").strip().lower()


def criterion(field: str, value: Any) -> str:
    text = "".join(_ESCAPED.get(ch, ch) for ch in str(value))
    return f"({field}:equals:{text})"


class ZohoSession(Connector):
    """The connection's API session and reads; ZohoConnector adds the writes."""

    name = "zoho"
    #: Zoho's access tokens live an hour (the answer's expires_in says so too)
    default_token_lifetime = 3600.0
    lists_changes = True
    max_list_page = zoho_changes.MAX_PER_PAGE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cooldown_cap = float(
            self.connection.options.get("limit_probe_max_seconds", DEFAULT_COOLDOWN_CAP_SECONDS)
        )

    def token_endpoint(self) -> str:
        return f"{self.connection.accounts_url or ACCOUNTS_URL}/oauth/v2/token"

    # the HTTP edge ----------------------------------------------------------------------
    def request(
        self, method: str, url: str, *, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        response = super().request(method, url, ok=ok, **kwargs)
        if self.memo is not None and self.memo.limited(self.connection.name):
            self.memo.limit_passed(self.connection.name)  # the limit let us through again
        return response

    def _send(self, method: str, url: str, token: str | None, **kwargs: Any) -> httpx.Response:
        """Calls go to the token's api_domain (the customer's data centre) with Zoho's own
        authorization scheme."""
        if token is not None:
            kwargs["headers"] = {
                **kwargs.get("headers", {}),
                "Authorization": f"Zoho-oauthtoken {token}",
            }
            if self.oauth is not None and url.startswith(API_PATH):
                url = self.oauth.last_state.instance_url + url
        return super()._send(method, url, None, **kwargs)

    def classify(self, response: httpx.Response) -> None:
        wait = None
        if response.status_code == 429:
            error = zoho.request_error(response) or {}
            wait = zoho.rate_wait(error, response)
            if wait is None:
                wait = (
                    self.memo.limit_refused(
                        self.connection.name, FIRST_COOLDOWN_SECONDS, self.cooldown_cap
                    )
                    if self.memo is not None
                    else FIRST_COOLDOWN_SECONDS
                )
        zoho.classify(response, wait)

    # reading --------------------------------------------------------------------------
    @classmethod
    def poll_problems(cls, poll: PollSpec) -> list[tuple[str, str]]:
        return zoho_changes.poll_problems(poll)

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """get-records by Modified_Time (connectors/zoho_changes.py)."""
        path = f"{API_PATH}/{poll.object}"
        return zoho_changes.list_changes(self, path, poll, since, cursor, until)

    def search(
        self, module: str, field: str, values: Sequence[Any], columns: Sequence[str] = ()
    ) -> dict[str, list[dict[str, Any]]]:
        """The records whose `field` equals one of `values` (without case), by value: one
        search per ten values."""
        wanted = list(dict.fromkeys(str(v) for v in values if v is not None))
        shown = ",".join(dict.fromkeys(["id", field, *columns]))
        found: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(wanted), SEARCH_CRITERIA):
            chunk = wanted[start : start + SEARCH_CRITERIA]
            criteria = "or".join(criterion(field, v) for v in chunk)
            if len(chunk) > 1:
                criteria = f"({criteria})"
            page = 1
            while True:
                response = self.request(
                    "GET",
                    f"{API_PATH}/{module}/search",
                    params={"criteria": criteria, "fields": shown, "page": page},
                    ok=(204,),
                )
                if response.status_code == 204:  # nothing matches
                    break
                body = response.json()
                for record in body.get("data") or []:
                    found.setdefault(key_of(record.get(field)), []).append(record)
                if not (body.get("info") or {}).get("more_records"):
                    break
                page += 1
        return found

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        field = record.match_field or "id"
        rows = self.search(record.object, field, [record.match_value], record.target_owned)
        matches = rows.get(key_of(record.match_value), [])
        if len(matches) > 1:
            raise ambiguous([str(r.get("id")) for r in matches], field)
        return matches[0] if matches else None

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        found = self.fetch_many(obj, [record_id], properties)[record_id]
        if isinstance(found, HubError):
            raise found
        return found

    def fetch_many(
        self, obj: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any] | HubError]:
        """Up to 100 records per GET (`ids=`); an id Zoho does not have is a dead letter
        `source_record_missing`."""
        wanted = list(dict.fromkeys(ids))
        shown = ",".join(dict.fromkeys(["id", *properties]))
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_GET):
            chunk = wanted[start : start + IDS_PER_GET]
            try:
                response = self.request(
                    "GET",
                    f"{API_PATH}/{quote(obj, safe='')}",
                    params={"ids": ",".join(chunk), "fields": shown},
                    ok=(204,),
                )
            except DataError as exc:
                if any(p.get("field") == "id" for p in exc.problems):
                    continue  # "the id given seems to be invalid": not there
                raise
            if response.status_code == 204:
                continue
            for record in response.json().get("data") or []:
                rows[str(record.get("id"))] = record
        return {
            record_id: rows.get(record_id)
            or DataError(
                f"Zoho CRM has no {obj} {record_id} (deleted?)",
                category=DeadCategory.SOURCE_RECORD_MISSING,
                status=204,
            )
            for record_id in wanted
        }

    def unanswered(self, response: httpx.Response) -> HubError:
        return zoho.error_for(
            {"message": "Zoho's answer does not list every record"},
            status=response.status_code,
            text=excerpt(response),
        )


def ambiguous(candidates: list[str], field: str | None) -> DataError:
    """Several Zoho records match one key: never a guess."""
    return DataError(
        f"{len(candidates)} Zoho CRM records match the key ({', '.join(candidates)}); merge "
        "them in Zoho CRM (or narrow the match), then replay",
        category=DeadCategory.AMBIGUOUS_MATCH,
        problems=[{"field": field, "problem": "several records match", "candidates": candidates}],
    )
