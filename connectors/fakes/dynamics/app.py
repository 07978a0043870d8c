"""The fake Dataverse (and its Entra ID token endpoint) as one application object: its API
(``api.py``) and its control routes. The HTTP server runs it (``python -m
connectors.fakes.dynamics``) and so does ``connectors.fakes.transport.FakeTransport``."""

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
    control_records,
)
from connectors.fakes.dynamics.api import Api
from connectors.fakes.dynamics.schema import METADATA_FILE, Metadata, check_write
from connectors.fakes.dynamics.state import Config, State


@lru_cache(maxsize=4)
def load_metadata(path: Path = METADATA_FILE) -> Metadata:
    return Metadata.load(path)


class FakeDynamics(FakeApp):
    """``FakeDynamics(Config(...))`` or ``FakeDynamics(client_secret=..., ...)``."""

    name = "fake dynamics"
    server_version = "crmhub-fake-dynamics/1.0"
    json_type = "application/json; odata.metadata=minimal"
    state: State
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "credentials": "POST",
        "records": "GET, POST",
        "log": "GET",
        "stats": "GET",
        "violations": "GET",
        "reset": "POST",
    }

    def __init__(
        self, config: Config | None = None, *, metadata: Path = METADATA_FILE, **options: Any
    ) -> None:
        self.state = State(config or Config(**options), load_metadata(metadata))
        self.api = Api(self.state)

    # --- what a test reads or arranges, without HTTP ------------------------------------------

    def records(self, entity_set: str) -> list[Json]:
        with self.state.lock:
            return [dict(r) for r in self.state.rows[entity_set].values()]

    def add_record(self, entity_set: str, **values: Any) -> str:
        """A row as a user would make it in the app (validated, not logged)."""
        entity = self.state.metadata.sets.get(entity_set)
        if entity is None:
            raise ValueError(f"no entity set {entity_set}")
        with self.state.lock:
            clean, binds = check_write(entity, values)
            for column, (_, target_id) in binds.items():
                clean[column] = target_id
            return self.state.insert(entity, clean)

    def edit_record(self, entity_set: str, row_id: str, **values: Any) -> None:
        """A user's edit in the app: new values and a new `modifiedon` (not logged)."""
        with self.state.lock:
            self.state.update(self.state.metadata.sets[entity_set], row_id, values)

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

    def finish(self, response: Response) -> Response:
        """A $batch answer is multipart, already encoded: sent as it is; an answer without a
        payload (the 401's bearer challenge) has no body, not JSON's `null`."""
        if response.payload is None and not response.drop:
            response.headers = {**response.headers, "Content-Length": str(len(response.content))}
            return response
        return super().finish(response)

    def control_extra(self, request: Request, route: str) -> Response:
        state = self.state
        body = control_json(request.raw) if request.method == "POST" else None
        if route == "credentials":
            # an admin adds a new client secret (or re-enables the app)
            secret = (body or {}).get("client_secret") or state.config.client_secret
            with state.lock:
                state.config.client_secret = str(secret)
                state.secret_valid = True
            return Response(200, {"client_id": state.config.client_id, "secret": "installed"})
        if route == "records":
            # (errors: a DvError or an unknown set, the test's mistake)
            return control_records(
                request, body, "entity_set", state.rows, state.lock, self.add_record,
                self.edit_record, errors=(Exception,),
            )  # fmt: skip
        # route == "violations"
        return Response(200, {"violations": self.violations(), "count": len(state.violations)})
