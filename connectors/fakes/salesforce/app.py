"""The fake Salesforce as one application object: its REST API (``api.py``) and its control
routes. The HTTP server runs it (``python -m connectors.fakes.salesforce``) and so does
``connectors.fakes.transport.FakeTransport``, in-process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
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
from connectors.fakes.salesforce.api import Api
from connectors.fakes.salesforce.config import Config
from connectors.fakes.salesforce.describe import SCHEMA_FILE, Schemas, check_write
from connectors.fakes.salesforce.state import State


@lru_cache(maxsize=4)
def load_schemas(path: Path = SCHEMA_FILE) -> Schemas:
    return Schemas.load(path)


class FakeSalesforce(FakeApp):
    """``FakeSalesforce(Config(...))`` or ``FakeSalesforce(daily_limit=..., ...)``."""

    name = "fake salesforce"
    server_version = "crmhub-fake-salesforce/1.0"
    json_type = "application/json;charset=UTF-8"
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

    def __init__(
        self, config: Config | None = None, *, schemas: Path = SCHEMA_FILE, **options: Any
    ) -> None:
        self.state = State(config or Config(**options), load_schemas(schemas))
        self.api = Api(self.state)

    # --- what a test reads or arranges, without HTTP ------------------------------------------

    def records(self, obj: str) -> list[Json]:
        with self.state.lock:
            return [dict(r) for r in self.state.records[obj].values()]

    def add_record(self, obj: str, **values: Any) -> str:
        """A record as a sales rep would make it in Salesforce's UI (validated, not logged)."""
        sobject = self.state.schemas.sobject(obj)
        if sobject is None:
            raise ValueError(f"no sObject {obj}")
        clean, error = check_write(sobject, values, creating=True)
        if error is not None:
            raise ValueError(error.message)
        with self.state.lock:
            return self.state.insert(sobject, clean)

    def edit_record(self, obj: str, record_id: str, **values: Any) -> None:
        """A rep's edit in the UI."""
        sobject = self.state.schemas.sobject(obj)
        if sobject is None or record_id not in self.state.records.get(sobject.name, {}):
            raise KeyError(f"no {obj} {record_id}")
        with self.state.lock:
            self.state.update(sobject, record_id, values)

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
            token = (body or {}).get("refresh_token") or "fake-sf-refresh-token-2"
            with state.lock:
                state.refresh_tokens = {str(token)}
            return Response(200, {"refresh_token": token})
        if route == "limits":
            return control_limits(state, body, ("daily_limit", "session_seconds"), "api_used")
        if route == "records":
            # one {object, [Id], field: value...} (a rep's create, or edit with Id), or a list
            # of them (a test changing many records while a poll lists them)
            return control_records(
                request, body, "object", state.records, state.lock, self.add_record,
                self.edit_record, errors=(ValueError, KeyError), id_key="Id",
            )  # fmt: skip
        # route == "violations"
        return Response(200, {"violations": self.violations(), "count": len(state.violations)})
