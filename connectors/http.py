"""The generic REST connector: upsert by key with PUT, read with GET, for any simple API.

Defaults: `PUT {base_url}/{object}/{match value, URL-encoded}` with the mapped fields as the
JSON body (201 created / 200 updated), `GET` on the same URL to read (200 with the record's
fields, 404 when absent). Paths and methods are configurable in the connection's `options`:
`path` (default "/{object}/{key}"), `method` (PUT), `read_method` (GET), `create_path`
(default "/{object}") and `create_method` (POST) for `action: create_only`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connectors.base import Connector, WriteResult, excerpt
from core.changes import ChangePage, Listed, Stamp
from core.config.polling import PollSpec
from core.errors import DataError
from core.mapping import MappedRecord
from core.mapping.record import first_value
from core.vocabulary import DeadCategory


class HttpConnector(Connector):
    name = "http"
    lists_changes = True

    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """`GET {base_url}/{object}?{since_param}={stamp}[&{limit_param}={page_size}]`, the
        records at `list.items`, the next page by the answer's `list.next` (sent back as
        `list.next_param`) or by page number (`list.page_param`, from 1; the cursor is the
        next page's number). `since_param` is inclusive; `until` is checked here (a generic
        API has no upper bound parameter)."""
        spec = poll.list
        if spec is None:  # the configuration refuses it; a clear error all the same
            raise DataError(
                "an http polling source needs `list:` (since_param, ...)",
                category=DeadCategory.MAPPING,
            )
        params: dict[str, str] = {spec.since_param: since.text}
        if spec.limit_param:
            params[spec.limit_param] = str(poll.page_size)
        if cursor and spec.next_param:
            params[spec.next_param] = cursor
        if spec.page_param:
            params[spec.page_param] = cursor or "1"
        answer = self.request("GET", f"/{quote(poll.object, safe='')}", params=params).json()
        items = first_value(answer, spec.items) if spec.items else answer
        if not isinstance(items, list):
            raise DataError(
                f"the listing of {poll.object} has no list at "
                f"`{' or '.join(spec.items) or '(the answer)'}` (the poll's list.items)",
                category=DeadCategory.MAPPING,
            )
        key = poll.id_field or "id"
        listed = []
        for item in items:
            if not isinstance(item, dict):
                continue
            stamp = str(item.get(poll.cursor) or "")
            if until is not None and (Stamp.parse(stamp) or until).ms > until.ms:
                continue
            listed.append(Listed(str(item.get(key)), stamp, item))
        if spec.page_param:
            more = str(int(cursor or "1") + 1) if len(items) >= poll.page_size else None
        else:
            found = first_value(answer, spec.next) if spec.next else None
            more = str(found) if found not in (None, "") else None
        return ChangePage(listed, more)

    def _url(self, record: MappedRecord, template_key: str, default: str) -> str:
        template = str(self.connection.options.get(template_key, default))
        key = quote(record.match_value or "", safe="")
        return template.format(object=quote(record.object, safe=""), key=key)

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        method = str(self.connection.options.get("read_method", "GET"))
        response = self.request(method, self._url(record, "path", "/{object}/{key}"), ok=(404,))
        if response.status_code == 404:
            return None
        data = response.json()
        return data if isinstance(data, dict) else None

    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        if record.action == "create_only":
            url = self._url(record, "create_path", "/{object}")
            method = str(self.connection.options.get("create_method", "POST"))
        else:
            url = self._url(record, "path", "/{object}/{key}")
            method = str(self.connection.options.get("method", "PUT"))
            if record.match_field and record.match_field not in fields:
                fields = {record.match_field: record.match_value, **fields}
        response = self.request(method, url, json=fields)
        operation = "created" if response.status_code == 201 else "updated"
        return WriteResult(operation, response.status_code, record.match_value, excerpt(response))
