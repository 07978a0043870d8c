"""The fake Pipedrive's API: routing; then faults, credentials, the rate limits and the
request's check against the official OpenAPI document before an operation; each operation
answers as Pipedrive does.

Sources: the v2 OpenAPI document (``spec/``), https://pipedrive.readme.io/docs/core-api-concepts-responses
(the envelope), .../core-api-concepts-http-status-codes, .../core-api-concepts-rate-limiting
(429, ``x-ratelimit-*``, the daily token budget), .../marketplace-oauth-and-api-proxy-status-codes
(the token endpoint: form-encoded, HTTP Basic client authentication, 1-hour tokens).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.pipedrive import texts
from connectors.fakes.pipedrive.listing import list_page
from connectors.fakes.pipedrive.records import Records, Refused
from connectors.fakes.pipedrive.spec import Operation, load, parameter_problems, problems
from connectors.fakes.pipedrive.state import State

_ROUTE = re.compile(r"^/api/v2/(persons|organizations)(?:/(search|[^/]+))?/?$")


class Api(Records):
    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.operations = load()

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str, str | None]:
        """(the OpenAPI operation key, the object, the record id) or ("unknown", ...)."""
        if path.rstrip("/") == "/oauth/token":
            return "oauth.token", "", None
        match = _ROUTE.match(path)
        if not match:
            return "unknown", "", None
        obj, tail = match.group(1), match.group(2)
        if tail == "search":
            return f"{method} /{obj}/search", obj, None
        if tail is None:
            return f"{method} /{obj}", obj, None
        return f"{method} /{obj}/{{id}}", obj, tail

    def handle(self, req: Request) -> Response:
        state = self.state
        key, obj, record_id = self.route(req.method, req.path)
        operation = self.operations.get(key)
        name = operation.operation_id if operation else key
        body: Any = None
        violation: str | None = None
        fault = state.first_fault(
            lambda f: f.mode in ("latency", "drop", "error5xx") and f.targets(req.method, obj)
        )
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000)
            fault = None
        if fault is not None and fault.mode == "drop":
            response = Response(0, drop=True)
        elif fault is not None:
            response = Response(fault.status, texts.server_error(fault.message))
        elif key == "oauth.token":
            response, body = self.token(req)
        else:
            try:
                body = _json(req) if req.raw else None
                response = self.api(req, operation, obj, record_id, body)
            except Refused as refused:
                response, violation = refused.response, refused.violation
            if body is None and req.raw:
                body = req.raw.decode("utf-8", "replace")[:2000]
        state.record(req, name, response, body, violation)
        return response

    # --- OAuth --------------------------------------------------------------------------------

    def token(self, req: Request) -> tuple[Response, Any]:
        state, config = self.state, self.state.config
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        logged = {k: "[redacted]" if "token" in k or "secret" in k else v for k, v in form.items()}

        def fail(kind: str, message: str) -> tuple[Response, Any]:
            state.token_errors[kind] += 1
            return Response(400, texts.oauth_error(message)), logged

        if req.content_type != "application/x-www-form-urlencoded":
            return fail(
                "invalid_request",
                "Invalid request: content must be application/x-www-form-urlencoded",
            )
        scheme, _, encoded = req.headers.get("authorization", "").partition(" ")
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
        if scheme.lower() != "basic" or pair != f"{config.client_id}:{config.client_secret}":
            return fail("invalid_client", "Invalid client: client is invalid")
        with state.lock:
            if form.get("grant_type") != "refresh_token":
                return fail("unsupported_grant_type", "Unsupported grant type")
            if form.get("refresh_token") not in state.refresh_tokens:
                return fail("invalid_grant", "Invalid grant: refresh_token is invalid")
            state.token_refreshes += 1
            answer = {
                "access_token": state.new_access_token(),
                "token_type": "Bearer",
                "expires_in": config.token_seconds,
                "refresh_token": form["refresh_token"],
                "scope": "base,contacts:full",
                "api_domain": config.api_domain,
            }
        return Response(200, answer), logged

    # --- the data API -------------------------------------------------------------------------

    def api(
        self,
        req: Request,
        operation: Operation | None,
        obj: str,
        record_id: str | None,
        body: Any,
    ) -> Response:
        state = self.state
        how = state.authorised(req)
        if how is None:
            bearer = req.headers.get("authorization", "").lower().startswith("bearer")
            return Response(401, texts.invalid_token() if bearer else texts.unauthorized())
        now = time.time()
        with state.lock:
            storm = state.first_fault(
                lambda f: f.mode == "rate_limit" and f.targets(req.method, obj)
            )
            refused = "storm" if storm is not None else None
            if refused is None and operation is not None:
                refused = state.spend(operation.token_cost, now)
            headers = state.budget_headers(now)
            if refused is not None:
                state.rate_limited += 1
                if refused == "burst":
                    headers["x-ratelimit-remaining"] = "0"
                if storm is not None and storm.retry_after is not None:
                    headers["Retry-After"] = str(int(storm.retry_after))
                return Response(429, texts.rate_limited(), headers)
            try:
                if operation is None:
                    raise Refused(Response(404, texts.error("Unknown method .")), "unknown route")
                self._check(req, operation, body)
                if operation.key == f"GET /{obj}":  # the list a polling source pages
                    response = list_page(state, obj, req)
                else:
                    response = self.operate(operation, obj, record_id, req, body)
            except Refused as refused_answer:
                refused_answer.response.headers.update(headers)
                raise
        response.headers.update(headers)
        return response

    def _check(self, req: Request, operation: Operation, body: Any) -> None:
        """The request against the operation's parameters and body schema: a 400 and a
        violation (a request Pipedrive would refuse for its shape) for the first problem."""
        found = parameter_problems(operation, req.query)
        if operation.body is not None:
            if req.content_type != "application/json":
                found.append(("body", "must be sent as application/json"))
            elif not isinstance(body, dict):
                found.append(("body", "Expected object"))
            else:
                found += problems(operation.body, body)
        if found:
            path, problem = found[0]
            raise Refused(
                Response(400, texts.validation(path, problem)),
                "; ".join(f"{p}: {q}" for p, q in found),
            )


def _json(req: Request) -> Any:
    try:
        return json.loads(req.raw)
    except ValueError:
        raise Refused(
            Response(400, texts.validation("body", "Invalid JSON")), "invalid JSON"
        ) from None


__all__ = ["Api", "Json"]
