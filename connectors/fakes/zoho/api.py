"""The fake Zoho's two hosts on one app, told apart by path: the accounts server
(``POST /oauth/v2/token``) and the CRM API (``/crm/v8/...``). Every API request is checked
against Zoho's OpenAPI documents (openapi.py: what does not fit is a violation), then goes
through faults, the access token, the org's API credits and the concurrency limit's faults
before its operation (records.py).

Sources: https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html (the
refresh: form ``refresh_token, client_id, client_secret, grant_type=refresh_token``, answer
``{access_token, api_domain, token_type, expires_in}``), crm-apis.md 3.1 (a revoked refresh
token answers HTTP 200 ``{"error": "invalid_code"}`` [observed]; an expired access token
401 ``INVALID_TOKEN`` [observed]), https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html
(API credits per rolling 24 hours, 1 per call).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from connectors.fakes.app import Request, Response
from connectors.fakes.zoho import texts
from connectors.fakes.zoho.layout import MODULES
from connectors.fakes.zoho.openapi import spec
from connectors.fakes.zoho.records import Records
from connectors.fakes.zoho.state import State
from connectors.fakes.zoho.texts import ZohoError

_CRM = re.compile(r"^/crm/v8/([^/]+)(?:/([^/]+))?/?$")


class Api:
    def __init__(self, state: State) -> None:
        self.state = state
        self.records = Records(state)

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str | None, str | None]:
        """(endpoint, module, the segment after it)."""
        if path.rstrip("/") == "/oauth/v2/token":
            return "oauth.token", None, None
        match = _CRM.match(path)
        if not match:
            return "unknown", None, None
        module, rest = unquote(match.group(1)), match.group(2)
        rest = unquote(rest) if rest else None
        names = {
            ("POST", "upsert"): "records.upsert",
            ("GET", "search"): "records.search",
        }
        if rest is None:
            name = {"POST": "records.create", "GET": "records.list"}.get(method, "unknown")
        else:
            name = names.get((method, rest)) or ("records.get" if method == "GET" else "unknown")
        return name, module, rest

    def handle(self, req: Request) -> Response:
        state = self.state
        endpoint, module, rest = self.route(req.method, req.path)
        if endpoint == "oauth.token":
            response, logged = self.token(req)
            state.record(req, endpoint, response, logged, [], 0)
            return response
        body: Any = None
        problems: list[str] = []
        credits = 0
        fault = state.first_fault(
            lambda f: f.mode in ("latency", "drop", "error5xx") and f.targets(req.method, module)
        )
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000)
            fault = None
        try:
            if req.raw:
                try:
                    body = json.loads(req.raw)
                except ValueError:
                    body = req.raw.decode("utf-8", "replace")[:2000]
                    raise texts.body_error("the request body is not valid JSON") from None
            problems = spec().check(req.method, req.path, req.query, body if req.raw else None)
            if fault is not None and fault.mode == "drop":
                response = Response(0, drop=True)
            elif fault is not None:
                raise texts.internal(fault.message, fault.status)
            else:
                credits, response, unknown = self.api(req, endpoint, module, rest, body)
                problems += unknown
        except ZohoError as exc:
            response = Response(exc.status, exc.body, exc.headers)
        state.record(req, endpoint, response, body, problems, credits)
        return response

    def api(
        self, req: Request, endpoint: str, module_name: str | None, rest: str | None, body: Any
    ) -> tuple[int, Response, list[str]]:
        """(credits spent, the answer, violations found by the operation)."""
        state = self.state
        if not state.token_valid(req.headers):
            raise texts.invalid_token()
        with state.lock:
            credits = state.config.credits
            spent = state.first_fault(
                lambda f: f.mode == "credits" and f.targets(req.method, module_name)
            )
            if spent is not None or (credits and state.credits_used >= credits):
                raise texts.credits_exhausted()
            busy = state.first_fault(
                lambda f: f.mode == "rate_limit" and f.targets(req.method, module_name)
            )
            if busy is not None:
                raise texts.too_many_requests(busy.retry_after)
            if endpoint == "unknown" or module_name is None:
                raise texts.invalid_url()
            module = MODULES.get(module_name)
            if module is None:
                raise texts.invalid_module()
            if req.method == "POST" and req.content_type != "application/json":
                raise texts.body_error(f"content type {req.content_type!r} is not JSON")
            if endpoint in ("records.upsert", "records.create"):
                response, unknown = self.records.write(module, body, endpoint == "records.upsert")
                return 1, response, unknown
            if endpoint == "records.search":
                return 1, self.records.search(module, req), []
            if endpoint == "records.list":
                return 1, self.records.get_list(module, req), []
            return 1, self.records.get_one(module, str(rest), req), []

    # --- the accounts server ------------------------------------------------------------------

    def token(self, req: Request) -> tuple[Response, Any]:
        state, config = self.state, self.state.config
        form = {k: v[-1] for k, v in parse_qs(req.raw.decode("utf-8", "replace")).items()}
        form |= {k: v[-1] for k, v in req.query.items()}  # Zoho takes them as query too
        logged = {k: "[redacted]" if "secret" in k or "token" in k else v for k, v in form.items()}

        def fail(error: str) -> tuple[Response, Any]:
            state.token_errors[error] += 1
            return Response(200, texts.token_error(error)), logged  # HTTP 200, as Zoho does

        with state.lock:
            now = time.time()
            if form.get("grant_type") != "refresh_token":
                return fail("unsupported_grant_type")
            if form.get("client_id") != config.client_id:
                return fail("invalid_client")
            if form.get("client_secret") != config.client_secret:
                return fail("invalid_client_secret")
            if form.get("refresh_token") not in state.refresh_tokens:
                return fail("invalid_code")
            throttled = state.first_fault(lambda f: f.mode == "token_throttle")
            if throttled is not None or state.throttled(now):
                state.token_errors["Access Denied"] += 1
                return Response(200, texts.token_throttled()), logged
            state.minted.append(now)
            state.token_refreshes += 1
            answer = texts.token_answer(state.new_token(), config.api_domain, config.token_seconds)
        return Response(200, answer), logged
