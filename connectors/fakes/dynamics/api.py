"""The fake Dataverse's HTTP API, and Entra ID's token endpoint beside it (hosts by path):
faults first, then the bearer token, then the operation, each answered as Dataverse does.

Sources: Web API basics and upsert (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api:
`PATCH /{set}({key}='{value}')` creates or updates, 204 with `OData-EntityId`; `If-Match: *`
update only, 404 when missing; `If-None-Match: *` create only, 412 when present;
`Prefer: return=representation` answers the row, 201 created / 200 updated [unconfirmed split]),
alternate keys (https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record),
query options (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows),
$batch (multipart.py), service protection (https://learn.microsoft.com/power-apps/developer/data-platform/api-limits:
429 with `Retry-After`; responses carry `x-ms-ratelimit-burst-remaining-xrm-requests` and
`x-ms-ratelimit-time-remaining-xrm-requests` [observed]), the client-credentials grant
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connectors.fakes.app import Request, Response
from connectors.fakes.dynamics import multipart
from connectors.fakes.dynamics.records import Records
from connectors.fakes.dynamics.state import Fault, State
from connectors.fakes.dynamics.texts import (
    DvError,
    bad_grant,
    bad_scope,
    bad_secret,
    bad_syntax,
    expired_secret,
    server_error,
    throttled,
    unknown_app,
)

_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
API_ROOT = "/api/data/v9.2"
BATCH_LIMIT = 1000
#: the faults that answer (or delay, or drop) a whole HTTP request
HTTP_MODES = ("latency", "drop", "error5xx", "throttle", "throttle_no_retry_after")
#: the per-user, per-5-minute request budget the headers count down (api-limits page)
WINDOW_REQUESTS = 6000


class Api(Records):
    def __init__(self, state: State) -> None:
        super().__init__(state)

    def handle(self, req: Request) -> Response:
        token = _TOKEN.match(req.path)
        if token:
            response, logged = self.token(req, token.group(1))
            self.state.record(req.method, req.path, "token", response.status, logged, None, [])
            return response
        if not req.path.startswith(API_ROOT + "/"):
            response = Response(404, resource_body(req.path))
            self.state.record(req.method, req.path, "unknown", 404, None, "unknown route", [])
            return response
        return self.data(req)

    # --- Entra ID -----------------------------------------------------------------------------

    def token(self, req: Request, tenant: str) -> tuple[Response, Any]:
        state, config = self.state, self.state.config
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        logged = {k: "[redacted]" if "secret" in k else v for k, v in form.items()}
        with state.lock:
            refused: tuple[int, dict[str, Any]] | None = None
            if form.get("grant_type") != "client_credentials":
                refused = bad_grant(str(form.get("grant_type")))
            elif form.get("client_id") != config.client_id or tenant != config.tenant:
                refused = unknown_app(str(form.get("client_id")), tenant)
            elif form.get("client_secret") != config.client_secret:
                refused = bad_secret(config.client_id)
            elif not state.secret_valid:
                refused = expired_secret(config.client_id)
            elif form.get("scope") != f"{config.url}/.default":
                refused = bad_scope(str(form.get("scope")))
            if refused is not None:
                status, body = refused
                state.token_errors[body["error"]] += 1
                return Response(status, body), logged
            answer = {
                "token_type": "Bearer",
                "expires_in": config.token_seconds,
                "ext_expires_in": config.token_seconds,
                "access_token": state.new_token(),
            }
        return Response(200, answer), logged

    # --- Dataverse ----------------------------------------------------------------------------

    def data(self, req: Request) -> Response:
        state = self.state
        rest = req.path[len(API_ROOT) :]
        endpoint = "batch" if rest == "/$batch" else _endpoint(req.method, rest)
        fault = state.first_fault(
            lambda f: (
                f.mode in ("latency", "drop", "error5xx", "throttle", "throttle_no_retry_after")
                and f.targets(req.method, None)
            )
        )
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000)
            fault = None
        violation: str | None = None
        logged: Any = None
        codes: list[str] = []
        if fault is not None and fault.mode == "drop":
            state.record(req.method, req.path, endpoint, None, None, None, [])
            return Response(0, drop=True)
        if fault is not None:
            response = self._fault_answer(fault)
        elif not state.token_valid(req.headers):
            # [unconfirmed] an expired or unknown token: 401, a bearer challenge, no body
            response = Response(
                401,
                None,
                {
                    "WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline"
                    f".com/{state.config.tenant}/oauth2/authorize, resource_id={state.config.url}"
                },
            )
        elif endpoint == "batch":
            response, logged, violation, codes = self.batch(req)
        else:
            try:
                with state.lock:
                    response, logged, violation = self.operate(
                        req.method, rest, req.query, req.headers, req.raw
                    )
            except DvError as exc:
                response = Response(exc.status, exc.body())
        if isinstance(response.payload, dict) and isinstance(response.payload.get("error"), dict):
            codes.append(str(response.payload["error"].get("code")))
        response.headers.update(self._usage())
        state.record(req.method, req.path, endpoint, response.status, logged, violation, codes)
        return response

    def _fault_answer(self, fault: Fault) -> Response:
        if fault.mode == "error5xx":
            error = server_error(fault.status, fault.message)
            return Response(error.status, error.body())
        error = throttled(fault.limit)
        headers = {}
        if fault.mode == "throttle":
            wait = fault.retry_after
            headers["Retry-After"] = str(int(wait)) if float(wait).is_integer() else str(wait)
        return Response(429, error.body(), headers)

    def _usage(self) -> dict[str, str]:
        remaining = max(0, WINDOW_REQUESTS - self.state.api_calls % WINDOW_REQUESTS - 1)
        return {
            "OData-Version": "4.0",
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(remaining),
            "x-ms-ratelimit-time-remaining-xrm-requests": "1,200,000.00",
        }

    def batch(self, req: Request) -> tuple[Response, Any, str | None, list[str]]:
        """Each group in order; a change set is one transaction (rolled back whole on a
        failure, answered by that one error); after a failure the batch stops unless
        `Prefer: odata.continue-on-error`."""
        if req.method != "POST":
            error = bad_syntax("$batch takes POST")
            return Response(405, error.body()), None, "batch not POST", [error.code]
        try:
            groups = multipart.parse(req.headers.get("content-type", ""), req.raw)
        except multipart.MalformedBatch as exc:
            error = bad_syntax(str(exc))
            return Response(400, error.body()), None, f"malformed batch: {exc}", [error.code]
        if sum(len(g.requests) for g in groups) > BATCH_LIMIT:
            error = bad_syntax(f"a batch holds at most {BATCH_LIMIT} requests")
            return Response(400, error.body()), None, "more than 1000 requests", [error.code]
        go_on = "odata.continue-on-error" in req.headers.get("prefer", "")
        answers: list[tuple[bool, list[multipart.InnerResponse]]] = []
        logged: list[dict[str, Any]] = []
        violations: list[str] = []
        codes: list[str] = []
        for group in groups:
            with self.state.lock:
                ok, responses = self._group(group, logged, violations)
            codes += [
                str(r.payload["error"]["code"])
                for r in responses
                if isinstance(r.payload, dict) and isinstance(r.payload.get("error"), dict)
            ]
            answers.append((ok and group.changeset, responses))
            if not ok and not go_on:
                break
        content_type, body = multipart.build(answers)
        response = Response(200, None, {"Content-Type": content_type}, content=body)
        return response, logged, "; ".join(violations) or None, codes

    def _group(
        self, group: multipart.Group, logged: list[dict[str, Any]], violations: list[str]
    ) -> tuple[bool, list[multipart.InnerResponse]]:
        undo: list[tuple[str, str, dict[str, Any] | None]] = []
        responses: list[multipart.InnerResponse] = []
        for inner in group.requests:
            path, query = _relative(inner.url)
            entry: dict[str, Any] = {"method": inner.method, "url": inner.url}
            try:
                if group.changeset and inner.method == "GET":
                    violations.append("a GET inside a change set")
                    raise bad_syntax("a change set may not hold GET requests")
                response, body, violation = self.operate(
                    inner.method, path, query, inner.headers, inner.body, undo
                )
                if violation:
                    violations.append(violation)
            except DvError as exc:
                response, body = Response(exc.status, exc.body()), _decoded(inner.body)
            entry |= {"status": response.status, "body": body}
            logged.append(entry)
            answer = multipart.InnerResponse(
                response.status, response.payload, response.headers, inner.content_id
            )
            if response.status >= 400:
                if group.changeset:
                    self.rollback(undo)
                return False, [answer]
            responses.append(answer)
        return True, responses


def _endpoint(method: str, rest: str) -> str:
    segment = rest.strip("/").split("/")[0]
    keyed = "(" in segment
    return f"{segment.split('(')[0]}.{method.lower()}{'.key' if keyed else ''}"


def _relative(url: str) -> tuple[str, dict[str, list[str]]]:
    """An inner request's URL (absolute, from the host, or from the service root) as the
    path after /api/data/v9.2 and its query."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith(API_ROOT):
        path = path[len(API_ROOT) :]
    elif not path.startswith("/"):
        path = "/" + path
    return path, parse_qs(parts.query)


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return raw.decode("utf-8", "replace")[:2000]


def resource_body(path: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "0x8006088a",
            "message": f"Resource not found for the segment '{unquote(path)}'.",
        }
    }
