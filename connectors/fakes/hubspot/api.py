"""The API's front door: a request is routed to its endpoint, then goes through faults, auth,
rate limits and the schema checks before the operation runs; ``Outcome`` says what happened,
for the answer and for the log."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote

from connectors.fakes.app import Request, Response
from connectors.fakes.hubspot.batch import BatchOps
from connectors.fakes.hubspot.checks import Rejected
from connectors.fakes.hubspot.objects import ObjectOps
from connectors.fakes.hubspot.properties import OBJECT_ALIASES
from connectors.fakes.hubspot.search import Search
from connectors.fakes.hubspot.state import Outcome
from connectors.fakes.hubspot.texts import hs_error, not_found_body

BATCH_OPS = ("upsert", "read", "create", "update", "archive")


class Api(ObjectOps, Search, BatchOps):
    """Routes an API request through faults, auth, rate limits, schema checks and the handlers."""

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str | None, list[str]]:
        """(endpoint name, canonical object or None, remaining path segments)."""
        if path.rstrip("/") == "/oauth/v1/token":
            return "oauth.token", None, []
        prefix = "/crm/v3/objects/"
        if not path.startswith(prefix):
            return "unknown", None, []
        segments = [unquote(s) for s in path[len(prefix) :].split("/")]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments.pop()
        if not segments or not segments[0]:
            return "crm.unknown", None, []
        obj = OBJECT_ALIASES.get(segments[0].lower())
        if obj is None:
            return "crm.unknown_object", None, segments
        rest = segments[1:]
        if not rest:
            return (f"{obj}.create" if method == "POST" else f"{obj}.list"), obj, rest
        if rest == ["search"]:
            return f"{obj}.search", obj, rest
        if len(rest) == 2 and rest[0] == "batch" and rest[1] in BATCH_OPS:
            return f"{obj}.batch_{rest[1]}", obj, rest
        if len(rest) == 1:
            names = {"GET": "get", "PATCH": "update", "DELETE": "archive"}
            return f"{obj}.{names.get(method, 'record')}", obj, rest
        return "crm.unknown", obj, rest

    def handle(self, req: Request) -> Outcome:
        """Faults, then auth, rate limits, schema checks and the operation itself."""
        state = self.state
        endpoint, obj, rest = self.route(req.method, req.path)
        out = Outcome(Response(0), endpoint, obj, self._logged_body(req, endpoint))
        fault = state.take_fault(req.method, endpoint, obj, ("latency", "drop", "error5xx"))
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000.0)
            out.fault = "latency"
            fault = state.take_fault(req.method, endpoint, obj, ("drop", "error5xx"))
        if fault is not None:
            out.fault = fault.mode
            if fault.mode == "drop":
                out.response = Response(0, drop=True)
                return out
            default = "internal error" if fault.status == 500 else "upstream error"
            out.response = Response(fault.status, hs_error(fault.message or default))
            return out
        if endpoint == "oauth.token":
            if req.method != "POST":
                out.response = Response(
                    405, hs_error("HTTP 405 Method Not Allowed"), {"Allow": "POST"}
                )
                out.problems = [{"path": "$", "problem": "method", "got": req.method}]
                return out
            out.response, out.body, out.problems = state.token(req)
            return out
        auth, denied = state.authenticate(req.headers)
        if denied is not None:
            out.response = denied
            return out
        assert auth is not None
        out.auth = auth
        forced = state.take_fault(
            req.method, endpoint, obj, ("rate_limit_burst", "rate_limit_daily")
        )
        if forced is not None:
            out.fault = forced.mode
        limited, headers = state.rate_limit(endpoint, auth, forced)
        if limited is not None:
            if forced is not None and forced.retry_after is not None:
                value = forced.retry_after
                shown = str(int(value)) if float(value).is_integer() else str(value)
                limited.headers["Retry-After"] = shown
            out.response = limited
            return out
        try:
            out.response = self._dispatch(req, endpoint, obj, rest)
        except Rejected as exc:
            out.response, out.problems = exc.response, exc.problems
        out.response.headers.update(headers)
        return out

    @staticmethod
    def _logged_body(req: Request, endpoint: str) -> Any:
        if not req.raw:
            return None
        if endpoint == "oauth.token":
            return None  # filled in by State.token, with the secret redacted
        try:
            return json.loads(req.raw)
        except (ValueError, UnicodeDecodeError):
            return req.raw.decode("utf-8", "replace")

    # --- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, req: Request, endpoint: str, obj: str | None, rest: list[str]) -> Response:
        if obj is None or endpoint.startswith("crm.") or endpoint == "unknown":
            if endpoint == "crm.unknown_object":
                # Not verified against a capture: HubSpot's answer to an object type it cannot
                # resolve, as remembered ("Unable to infer object type from: <name>"). The fake
                # knows only contacts and companies, so any other type is treated as a mistake.
                raise Rejected(
                    Response(
                        400,
                        hs_error(
                            f"Unable to infer object type from: {rest[0]}",
                            category="VALIDATION_ERROR",
                        ),
                    ),
                    [{"path": req.path, "problem": "unknown object type", "object": rest[0]}],
                )
            raise Rejected(
                Response(404, not_found_body()), [{"path": req.path, "problem": "unknown route"}]
            )
        otype = self.state.types[obj]
        action = endpoint.split(".", 1)[1]
        allowed = {
            "create": "POST",
            "list": "GET",
            "search": "POST",
            "get": "GET",
            "update": "PATCH",
            "archive": "DELETE",
        }
        expected = allowed.get(action, "POST")
        if action == "record" or req.method != expected:
            raise Rejected(
                Response(405, hs_error("HTTP 405 Method Not Allowed"), {"Allow": expected}),
                [{"path": req.path, "problem": "method", "got": req.method}],
            )
        handler = getattr(self, f"_op_{action}")
        result: Response = handler(req, otype, rest)
        return result
