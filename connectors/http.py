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
from core.mapping import MappedRecord


class HttpConnector(Connector):
    name = "http"

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
