"""The fake Salesforce's REST API: routing, then faults, the session check and the org's
daily budget before an operation; each operation answers as Salesforce does.

Sources: REST API developer guide (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/),
status codes and error bodies (.../errorcodes.htm), upsert by external id
(https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html), sObject
Collections (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html),
API usage header (.../headers_api_usage.htm), the OAuth token endpoint
(https://developer.salesforce.com/docs/atlas.en-us.222.0.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from connectors.fakes.app import Request, Response
from connectors.fakes.salesforce.collections import Collections
from connectors.fakes.salesforce.records import describe_body
from connectors.fakes.salesforce.texts import (
    SfError,
    not_found,
    oauth_error,
    request_limit,
    rest_errors,
    session_invalid,
)

_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")


class Api(Collections):
    """The routes, and what every API request goes through before its operation."""

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str, list[str]]:
        """(endpoint name, API version, the segments after it)."""
        if path.rstrip("/") == "/services/oauth2/token":
            return "oauth.token", "", []
        match = _DATA.match(path)
        if not match:
            return "unknown", "", []
        version = match.group(1)
        rest = [unquote(s) for s in (match.group(2) or "").strip("/").split("/") if s]
        if rest[:1] == ["query"] and len(rest) == 1 and method == "GET":
            return "query", version, rest
        if rest[:1] == ["query"] and len(rest) == 2 and method == "GET":
            return "query.more", version, rest
        if rest[:1] == ["sobjects"]:
            names = {
                (2, "POST"): "sobjects.create",
                (3, "GET"): "sobjects.get",
                (3, "PATCH"): "sobjects.update",
                (4, "PATCH"): "sobjects.upsert",
            }
            if len(rest) == 3 and rest[2] == "describe" and method == "GET":
                return "sobjects.describe", version, rest
            return names.get((len(rest), method), "unknown"), version, rest
        if rest[:2] == ["composite", "sobjects"]:
            names = {
                (2, "POST"): "composite.create",
                (2, "PATCH"): "composite.update",
                (4, "PATCH"): "composite.upsert",
            }
            return names.get((len(rest), method), "unknown"), version, rest
        return "unknown", version, rest

    def handle(self, req: Request) -> Response:
        state = self.state
        endpoint, version, rest = self.route(req.method, req.path)
        body_logged: Any = None
        violation: str | None = None
        fault = state.first_fault(
            lambda f: f.mode in ("latency", "drop", "error5xx") and f.targets(req.method, None)
        )
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000)
            fault = None
        if fault is not None and fault.mode == "drop":
            response = Response(0, drop=True)
        elif fault is not None:
            # errorcodes.htm: 500 / 503 with an error array
            response = Response(
                fault.status,
                rest_errors(
                    SfError("SERVER_UNAVAILABLE", fault.message or "Server unavailable", status=503)
                ),
            )
        elif endpoint == "oauth.token":
            response, body_logged = self.token(req)
        else:
            try:
                body_logged = _json_body(req) if req.raw else None
            except SfError as exc:
                body_logged = req.raw.decode("utf-8", "replace")[:2000]
                violation = exc.message
                response = Response(exc.status, rest_errors(exc))
            else:
                response, violation = self.api(req, endpoint, version, rest, body_logged)
        state.record(req, endpoint, response, body_logged, violation)
        return response

    # --- OAuth --------------------------------------------------------------------------------

    def token(self, req: Request) -> tuple[Response, Any]:
        state, config = self.state, self.state.config
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        logged = {k: "[redacted]" if "secret" in k or "token" in k else v for k, v in form.items()}

        def fail(error: str, description: str) -> tuple[Response, Any]:
            state.token_errors[error] += 1
            return Response(400, oauth_error(error, description)), logged

        with state.lock:
            if form.get("client_id") != config.client_id:
                return fail("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != config.client_secret:
                return fail("invalid_client", "invalid client credentials")
            grant = form.get("grant_type")
            answer: dict[str, Any] = {}
            if grant == "refresh_token":
                if form.get("refresh_token") not in state.refresh_tokens:
                    return fail("invalid_grant", "expired access/refresh token")
                if config.rotate_refresh_tokens:
                    state.refresh_tokens.discard(form["refresh_token"])
                    new = "5Aep" + state.new_session().split("!")[1][:60]
                    state.refresh_tokens.add(new)
                    answer["refresh_token"] = new
            elif grant == "client_credentials":
                if not config.client_credentials:
                    return fail("invalid_grant", "no client credentials user enabled")
            else:
                return fail("unsupported_grant_type", "grant type not supported")
            access = state.new_session()
            state.token_refreshes += 1
            issued = str(int(time.time() * 1000))
            # the token answer has no expires_in (the session timeout decides)
            answer |= {
                "access_token": access,
                "signature": "ZmFrZS1zaWduYXR1cmU=",
                "scope": "api refresh_token",
                "instance_url": config.instance_url,
                "id": f"https://login.salesforce.com/id/{config.org_id}/{config.user_id}",
                "token_type": "Bearer",
                "issued_at": issued,
            }
        return Response(200, answer), logged

    # --- the data API -------------------------------------------------------------------------

    def api(
        self, req: Request, endpoint: str, version: str, rest: list[str], body: Any
    ) -> tuple[Response, str | None]:
        state = self.state
        if not state.session_valid(req.headers):
            return Response(401, rest_errors(session_invalid())), None
        with state.lock:
            limit = state.config.daily_limit
            limited = state.first_fault(
                lambda f: f.mode == "request_limit" and f.targets(req.method, None)
            )
            if limited is not None or (limit and state.api_used >= limit):
                return self._usage(Response(403, rest_errors(request_limit()))), None
            state.api_used += 1
            if endpoint == "unknown":
                error = not_found()
                return self._usage(Response(404, rest_errors(error))), "unknown route"
            if req.method in ("POST", "PATCH") and req.content_type != "application/json":
                error = SfError(
                    "UNSUPPORTED_MEDIA_TYPE",
                    f"Content type '{req.content_type}' not supported",
                    status=415,
                )
                return self._usage(Response(415, rest_errors(error))), "content-type"
            try:
                response, violation = self._operate(req, endpoint, version, rest, body)
            except SfError as exc:
                response, violation = Response(exc.status, rest_errors(exc)), None
        return self._usage(response), violation

    def _usage(self, response: Response) -> Response:
        # headers_api_usage.htm: every REST answer carries the org's usage
        limit = self.state.config.daily_limit
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.state.api_used}/{limit}"
        return response

    def _operate(
        self, req: Request, endpoint: str, version: str, rest: list[str], body: Any
    ) -> tuple[Response, str | None]:
        state = self.state
        if endpoint == "query":
            options = req.headers.get("sforce-query-options", "")
            size = re.search(r"batchSize=(\d+)", options)
            return self.query(req.param("q") or "", version, int(size[1]) if size else None), None
        if endpoint == "query.more":
            return self.query_more(rest[1], version), None
        if endpoint == "sobjects.describe":
            sobject = self._sobject(rest[1])
            return Response(200, describe_body(sobject)), None
        if endpoint == "sobjects.get":
            sobject = self._sobject(rest[1])
            record = state.records[sobject.name].get(rest[2])
            if record is None:
                raise not_found()
            wanted = req.param_list("fields")
            return Response(200, self._shown(sobject, record, wanted, version)), None
        if not isinstance(body, dict):
            raise SfError("JSON_PARSER_ERROR", "The request body must be a JSON object")
        if endpoint.startswith("composite."):
            return self.collection(endpoint, rest, body, version)
        sobject = self._sobject(rest[1])
        self._write_fault(rest[2] if len(rest) > 2 else "")
        if endpoint == "sobjects.create":
            record_id, _ = self._save(sobject, body, None)
            return Response(201, {"id": record_id, "success": True, "errors": []}), None
        if endpoint == "sobjects.update":
            if rest[2] not in state.records[sobject.name]:
                raise not_found()
            self._save(sobject, body, rest[2])
            return Response(204), None
        # sobjects.upsert: PATCH /sobjects/{object}/{externalIdField}/{value}
        field = sobject.field(rest[2])
        if field is None or not (field.external_id or field.name == "Id"):
            raise not_found()
        found = state.find(sobject, field.name, rest[3])
        if len(found) > 1:
            # several matches: 300 Multiple Choices, the matching records' URLs, nothing written
            urls = [f"/services/data/v{version}/sobjects/{sobject.name}/{rid}" for rid in found]
            return Response(300, urls), None
        values = {**body, field.name: rest[3]} if not found else body
        record_id, created = self._save(sobject, values, found[0] if found else None)
        # v46.0+: 201 created / 200 updated, both with "created"
        status = 201 if created else 200
        return Response(
            status, {"id": record_id, "success": True, "errors": [], "created": created}
        ), None


def _json_body(req: Request) -> Any:
    try:
        return json.loads(req.raw)
    except ValueError:
        raise SfError(
            "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value"
        ) from None
