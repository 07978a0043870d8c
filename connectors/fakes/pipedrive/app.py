"""The fake Pipedrive as one application object: its API (``api.py``) and its control
routes. The HTTP server runs it (``python -m connectors.fakes.pipedrive``) and so does
``connectors.fakes.transport.FakeTransport``, in-process."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.fakes.app import (
    FakeApp,
    Json,
    Request,
    Response,
    control_json,
    control_limits,
    control_records,
)
from connectors.fakes.pipedrive.api import Api
from connectors.fakes.pipedrive.config import Config
from connectors.fakes.pipedrive.records import Refused
from connectors.fakes.pipedrive.state import OBJECTS, State


class FakePipedrive(FakeApp):
    """``FakePipedrive(Config(...))`` or ``FakePipedrive(api_token=..., ...)``."""

    name = "fake pipedrive"
    server_version = "crmhub-fake-pipedrive/1.0"
    state: State
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "api-token": "POST",
        "refresh-token": "POST",
        "limits": "GET, POST",
        "records": "GET, POST",
        "log": "GET",
        "stats": "GET",
        "violations": "GET",
        "reset": "POST",
    }

    def __init__(self, config: Config | None = None, **options: Any) -> None:
        self.state = State(config or Config(**options))
        self.api = Api(self.state)

    # --- what a test reads or arranges, without HTTP ------------------------------------------

    def records(self, obj: str) -> list[Json]:
        with self.state.lock:
            return [dict(r) for r in self.state.records[obj].values()]

    def add_record(self, obj: str, **values: Any) -> int:
        """A record as a sales rep makes it in Pipedrive's UI (checked, not logged)."""
        if obj not in OBJECTS:
            raise ValueError(f"no object {obj}")
        with self.state.lock:
            try:
                return int(self.api.add(obj, values)["id"])
            except Refused as refused:
                raise ValueError(str(refused.response.payload)) from None

    def edit_record(self, obj: str, record_id: int | str, **values: Any) -> None:
        """A rep's edit in Pipedrive's UI: new values and a new `update_time` (not logged)."""
        with self.state.lock:
            self.api.change(obj, self.state.records[obj][int(record_id)], values)

    def log(self) -> list[Json]:
        entries: list[Json] = self.state.log_since(0, None)["entries"]
        return entries

    def violations(self) -> list[Json]:
        with self.state.lock:
            return list(self.state.violations)

    def fault(self, **spec: Any) -> Json:
        answer: Json = self.state.add_faults(spec).payload
        return answer

    # --- FakeApp ------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        return self.api.handle(request)

    def control_extra(self, request: Request, route: str) -> Response:
        state = self.state
        body = control_json(request.raw) if request.method == "POST" else None
        if route in ("api-token", "refresh-token"):
            # a rotated API token / a re-authorised app: the one valid credential from now on
            key = route.replace("-", "_")
            token = str((body or {}).get(key) or f"fake-pd-{route}-2")
            with state.lock:
                if route == "api-token":
                    state.api_tokens = {token}
                else:
                    state.refresh_tokens = {token}
            return Response(200, {key: token})
        if route == "limits":
            return control_limits(
                state, body, ("daily_tokens", "burst_limit", "token_seconds"), "tokens_used"
            )
        if route == "records":
            return control_records(
                request, body, "object", state.records, state.lock, self.add_record,
                self.edit_record,
            )  # fmt: skip
        # route == "violations"
        return Response(200, {"violations": self.violations(), "count": len(state.violations)})
