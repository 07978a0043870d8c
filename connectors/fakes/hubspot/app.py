"""The fake HubSpot as one application object: its API (``api.py``) and its control routes,
answered the way HubSpot answers (``application/json;charset=utf-8``, a correlation id header
on every answer). The HTTP server runs it (``python -m connectors.fakes.hubspot``) and so does
``connectors.fakes.transport.FakeTransport``, in-process."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from connectors.fakes.app import FakeApp, Json, Request, Response, control_json
from connectors.fakes.hubspot.api import Api
from connectors.fakes.hubspot.auth import AccessToken
from connectors.fakes.hubspot.config import Config
from connectors.fakes.hubspot.properties import (
    OBJECT_ALIASES,
    build_object_types,
    check_properties,
)
from connectors.fakes.hubspot.schemas import SCHEMA_FILE, SchemaBook
from connectors.fakes.hubspot.state import State
from connectors.fakes.hubspot.texts import JSON_TYPE, hs_error, new_correlation_id


@lru_cache(maxsize=4)
def load_schemas(path: Path = SCHEMA_FILE) -> SchemaBook:
    """The schema file, read once per process (a SchemaBook is never changed after loading)."""
    return SchemaBook.load(path)


class FakeHubSpot(FakeApp):
    """``FakeHubSpot(Config(...))`` or ``FakeHubSpot(private_app_token=..., ...)`` (the Config
    fields); ``custom_properties``: ``OBJECT:NAME[:TYPE][:unique]`` as ``--custom-property``."""

    name = "fake hubspot"
    server_version = "crmhub-fake-hubspot/1.0"
    json_type = JSON_TYPE
    ensure_ascii = False
    length_on_empty = True
    keep_blank_values = True
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "refresh-token": "POST",
        "auth": "GET",
        "limits": "GET, POST",
        "records": "GET",
        "log": "GET",
        "stats": "GET",
        "violations": "GET",
        "reset": "POST",
    }

    def __init__(
        self,
        config: Config | None = None,
        *,
        custom_properties: Sequence[str] = (),
        schemas: Path = SCHEMA_FILE,
        **options: Any,
    ) -> None:
        book = load_schemas(schemas)
        self.state: State = State(
            config or Config(**options), book, build_object_types(book, list(custom_properties))
        )
        self.api = Api(self.state)

    # --- what a test reads, without going through HTTP -----------------------------------------

    def records(self, obj: str | None = None) -> list[Json]:
        """Every stored record (of one object) with all its properties, as
        ``GET /_control/records`` lists them."""
        records: list[Json] = self.state.dump(OBJECT_ALIASES.get(obj, obj) if obj else None)[
            "records"
        ]
        return records

    def log(self, since: int = 0) -> list[Json]:
        """The request log (``GET /_control/log``): method, path, endpoint, body, status..."""
        entries: list[Json] = self.state.log_since(since, None)["entries"]
        return entries

    def violations(self) -> list[Json]:
        """Requests HubSpot would have refused for their shape (``GET /_control/violations``)."""
        violations: list[Json] = self.state.violation_list()["violations"]
        return violations

    def fault(self, **spec: Any) -> Json:
        """Inject a fault (``POST /_control/faults``); answers the control API's answer."""
        answer: Json = self.state.add_faults(spec).payload
        return answer

    # --- what a test arranges, as if it had happened in HubSpot ---------------------------------

    def add_record(self, obj: str = "contacts", **properties: str) -> str:
        """A record as if made in HubSpot's own UI (checked as an API write would be, not
        logged): its id."""
        otype = self.state.types[OBJECT_ALIASES.get(obj, obj)]
        clean, errors = check_properties(otype, properties)
        if errors:
            raise ValueError("; ".join(f"{e.name}: {e.message}" for e in errors))
        with self.state.lock:
            if self.state.unique_conflict(otype, clean, None) is not None:
                raise ValueError(f"a {otype.singular} with these unique values exists")
            record_id: str = self.state.create(otype, clean)["id"]
            return record_id

    def issue_token(self, access_token: str | None = None, expires_in: float | None = None) -> str:
        """An access token this HubSpot issued earlier (to whom does not matter): it expires
        in ``expires_in`` seconds (the token TTL when None; 0 or less: already expired)."""
        with self.state.lock:
            token = access_token or "CN" + secrets.token_urlsafe(48)
            now = time.time()
            ttl = self.state.config.token_ttl if expires_in is None else expires_in
            self.state.access_tokens[token] = AccessToken(now + ttl, now)
            return token

    def access_tokens(self) -> list[str]:
        """Every access token issued so far, oldest first."""
        with self.state.lock:
            return list(self.state.access_tokens)

    def refresh_tokens(self) -> set[str]:
        """The refresh tokens the token endpoint accepts now."""
        with self.state.lock:
            return set(self.state.refresh_tokens)

    def set_refresh_token(self, token: str) -> None:
        """Make ``token`` the one valid refresh token, as after re-authorising the app
        (``POST /_control/refresh-token``)."""
        self.state.set_refresh_token({"refresh_token": token})

    # --- FakeApp ------------------------------------------------------------------------------

    def framing_error(self, message: str) -> Any:
        return hs_error(message)

    def first_headers(self, response: Response) -> dict[str, str]:
        payload = response.payload
        correlation = payload.get("correlationId") if isinstance(payload, dict) else None
        return {"x-hubspot-correlation-id": str(correlation or new_correlation_id())}

    def handle_api(self, request: Request) -> Response:
        out = self.api.handle(request)
        self.state.record(request, out)
        return out.response

    def control_extra(self, request: Request, route: str) -> Response:
        state, method = self.state, request.method
        if route == "refresh-token":
            return Response(200, state.set_refresh_token(control_json(request.raw) or {}))
        if route == "auth":
            return Response(200, state.auth_state())
        if route == "limits":
            if method == "POST":
                return Response(200, state.set_limits(control_json(request.raw)))
            with state.lock:
                return Response(200, state.limits())
        if route == "records":
            obj = request.query.get("object", [None])[-1]
            return Response(200, state.dump(OBJECT_ALIASES.get(obj, obj) if obj else None))
        # route == "violations"
        return Response(200, state.violation_list())
