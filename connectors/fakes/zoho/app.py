"""The fake Zoho CRM as one application object: its accounts server and CRM API (``api.py``)
and its control routes. The HTTP server runs it (``python -m connectors.fakes.zoho``) and so
does ``connectors.fakes.transport.FakeTransport``, in-process."""

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
from connectors.fakes.zoho.api import Api
from connectors.fakes.zoho.config import Config
from connectors.fakes.zoho.layout import MODULES, check_values
from connectors.fakes.zoho.state import State


class FakeZoho(FakeApp):
    """``FakeZoho(Config(...))`` or ``FakeZoho(credits=..., ...)``."""

    name = "fake zoho"
    server_version = "crmhub-fake-zoho/1.0"
    json_type = "application/json;charset=utf-8"
    state: State
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
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

    def records(self, module: str) -> list[Json]:
        with self.state.lock:
            return [dict(r) for r in self.state.records[module].values()]

    def add_record(self, module: str, **values: Any) -> str:
        """A record as a sales rep makes it in Zoho's UI (checked, not logged)."""
        layout = MODULES.get(module)
        if layout is None:
            raise ValueError(f"no module {module}")
        with self.state.lock:
            clean, problem, unknown = check_values(
                layout, values, 0, True, None, lambda m, i: i in self.state.records.get(m, {})
            )
            if problem is not None or unknown:
                raise ValueError(str(problem or f"no such fields: {unknown}"))
            return str(self.state.insert(layout, clean)["id"])

    def edit_record(self, module: str, record_id: str, **values: Any) -> None:
        """A rep's edit in Zoho's UI: new values and a new `Modified_Time` (not logged)."""
        with self.state.lock:
            self.state.update(MODULES[module], record_id, values)

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
        if route == "refresh-token":
            token = (body or {}).get("refresh_token") or "1000.fake-zoho-refresh-token-2"
            with state.lock:
                state.refresh_tokens = {str(token)}
            return Response(200, {"refresh_token": token})
        if route == "limits":
            return control_limits(
                state, body, ("credits", "token_seconds", "tokens_per_ten_minutes"), "credits_used"
            )
        if route == "records":
            return control_records(
                request, body, "module", state.records, state.lock, self.add_record,
                self.edit_record,
            )  # fmt: skip
        # route == "violations"
        return Response(200, {"violations": self.violations(), "count": len(state.violations)})
