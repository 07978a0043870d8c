"""Dataverse's Web API (v9.2) as a session: Microsoft Entra ID's client-credentials token
(scope `{base_url}/.default`, no refresh token), the OData headers, the configuration rule
(a match field must be a declared alternate key), every answer classified once
(connectors/dynamics_errors.py), the reads (`$filter` lookups on a key, fetch by id) and the
sending of requests, alone or as one `$batch` (connectors/dynamics_batch.py).
connectors/dynamics.py builds the writes on it.

Sources: https://learn.microsoft.com/power-apps/developer/data-platform/authenticate-oauth,
https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record,
https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors import dynamics_batch as batch
from connectors import dynamics_changes
from connectors import dynamics_errors as dv
from connectors.base import Connector, excerpt
from core.changes import ChangePage, Stamp
from core.config.model import ConnectionConfig, MappingConfig
from core.config.polling import PollSpec
from core.errors import DataError, HubError, TransientError
from core.mapping import MappedRecord
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


class DynamicsSession(Connector):
    """The connection's Web API session and reads; DynamicsConnector adds the writes."""

    name = "dynamics"
    max_batch = batch.BATCH_LIMIT
    #: Entra ID answers expires_in; this is only for an answer without it
    default_token_lifetime = 3600.0
    lists_changes = True

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
    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """The Web API query by modifiedon (connectors/dynamics_changes.py)."""
        path, key = f"{API}/{poll.object}", primary_key(poll.object)
        return dynamics_changes.list_changes(self, path, key, poll, since, cursor, until)

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
