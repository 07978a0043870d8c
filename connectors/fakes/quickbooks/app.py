"""The fake QuickBooks Online: its application object, state and answers (see __init__ for
what it serves and the Intuit pages each answer follows)."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

from connectors.fakes.app import BadRequest, FakeApp, Json, Request, Response, control_json
from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec
from connectors.fakes.state import StateBase, new_log

FAULT_MODES = ("error5xx", "throttle", "revoke_refresh_token", "expire_tokens")
IMMEDIATE_MODES = ("revoke_refresh_token", "expire_tokens")
_READ = re.compile(r"^/v3/company/([^/]+)/([a-z]+)/([^/]+)$")
TOKEN_PATH = "/oauth2/v1/tokens/bearer"


def _time() -> str:
    """Intuit's `time` member: local time, milliseconds, offset (2015-07-24T10:48:27.082-07:00)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
    offset = time.strftime("%z", time.localtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}{offset[:3]}:{offset[3:]}"


def fault(status_type: str, code: str, message: str, detail: str) -> Json:
    """Intuit's fault body for data requests (ValidationFault, ThrottleExceeded...):
    `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}, "time"}`."""
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": status_type,
        },
        "time": _time(),
    }


def auth_fault(code: str, message: str, detail: str) -> Json:
    """Authentication and authorisation faults come in lower-case keys ([observed] in
    captures published with intuit-oauth and node-quickbooks issues)."""
    return {
        "fault": {
            "error": [{"message": message, "detail": detail, "code": code}],
            "type": "AUTHENTICATION",
        },
        "time": _time(),
    }


@dataclass
class Fault(FaultBase):
    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "mode",
        "count",
        "remaining",
        "seconds",
        "expires_in",
        "ratio",
        "seed",
        "status",
        "hits",
        "active",
    )


class State(StateBase[Fault]):
    def __init__(self, refresh_token: str) -> None:
        super().__init__()
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.initial_refresh_token = refresh_token
        self.clear()

    def clear(self) -> None:
        self.records: dict[str, dict[str, Json]] = {}  # entity ("Invoice") -> id -> record
        self.refresh_tokens = {self.initial_refresh_token}
        self.access_tokens: set[str] = set()
        self.log = new_log()
        self.faults = []
        self.by_fault = Counter()
        self.by_status: Counter[str] = Counter()
        self.reads = 0
        self.token_refreshes = 0
        self.next_id = 1000

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        options = parse_fault_spec(
            spec, FAULT_MODES, numbers=("count", "seconds", "ratio", "status"), texts=(), lists=()
        )
        return Fault(id=fault_id, **common_fault_args(options))

    def install_faults(self, parsed: list[Fault]) -> tuple[list[Fault], Json]:
        kept, applied = [], []
        for item in parsed:
            if item.mode == "revoke_refresh_token":
                applied.append({"mode": item.mode, "revoked": len(self.refresh_tokens)})
                self.refresh_tokens = set()
            elif item.mode == "expire_tokens":
                applied.append({"mode": item.mode, "expired": len(self.access_tokens)})
                self.access_tokens = set()
            else:
                kept.append(item)
        return kept, {"applied": applied}

    def stats(self) -> Json:
        with self.lock:
            return {
                "reads": self.reads,
                "token_refreshes": self.token_refreshes,
                "records": {k: len(v) for k, v in self.records.items()},
                "by_status": dict(self.by_status),
                "by_fault": dict(self.by_fault),
            }


class FakeQuickBooks(FakeApp):
    name = "fake quickbooks"
    state: State
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "log": "GET",
        "stats": "GET",
        "reset": "POST",
        "records": "GET, POST",
    }

    def __init__(
        self,
        *,
        client_id: str = "fake-qbo-client-id",
        client_secret: str = "fake-qbo-client-secret",
        refresh_token: str = "fake-qbo-refresh-token",
        realm_id: str = "9130350000000001",
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.realm_id = realm_id
        self.rotate = rotate_refresh_tokens
        self.state = State(refresh_token)

    # --- the API ------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        response = self._answer(request)
        with self.state.lock:
            self.state.seq += 1
            self.state.by_status[str(response.status)] += 1
            self.state.log.append(
                {
                    "seq": self.state.seq,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                }
            )
        return response

    def _answer(self, request: Request) -> Response:
        if request.path == TOKEN_PATH:
            if request.method != "POST":
                return Response(405, {"error": "method_not_allowed"}, {"Allow": "POST"})
            return self._token(request)
        found = _READ.match(request.path)
        if found is None or request.method != "GET":
            return Response(
                404 if found is None else 405,
                fault("ValidationFault", "4000", "Unsupported Operation", request.path),
            )
        injected = self.state.first_fault(lambda f: f.targets(request.method, None))
        if injected is not None and injected.mode == "throttle":
            return Response(
                429,
                fault(
                    "ThrottleExceeded",
                    "003001",
                    "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    "The request limit was reached.",
                ),
            )
        if injected is not None:
            return Response(injected.status if injected.status >= 500 else 503, {"error": "fault"})
        token = request.headers.get("authorization", "")
        with self.state.lock:
            known = token.startswith("Bearer ") and token[7:] in self.state.access_tokens
        if not known:
            return Response(
                401,
                auth_fault(
                    "3200",
                    "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "Token expired or revoked",
                ),
                {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
            )
        realm, entity_path, record_id = (unquote(g) for g in found.groups())
        if realm != self.realm_id:
            return Response(
                403,
                auth_fault(
                    "3100",
                    "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                    "The application is not authorised for this company",
                ),
            )
        with self.state.lock:
            self.state.reads += 1
            entity = next((e for e in self.state.records if e.lower() == entity_path), None)
            record = self.state.records.get(entity or "", {}).get(record_id)
            if entity is None or record is None:
                return Response(
                    400,
                    fault(
                        "ValidationFault",
                        "610",
                        "Object Not Found",
                        "Object Not Found : Something you're trying to use has been made "
                        "inactive. Check the fields with accounts, customers, items, vendors "
                        "or employees.",
                    ),
                )
            return Response(200, {entity: dict(record), "time": _time()})

    def _token(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if header != f"Basic {expected}":
            return Response(401, {"error": "invalid_client"})
        form = parse_qs(request.raw.decode("utf-8", "replace"))
        grant = (form.get("grant_type") or [""])[-1]
        token = (form.get("refresh_token") or [""])[-1]
        if grant != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type"})
        with self.state.lock:
            if token not in self.state.refresh_tokens:
                return Response(400, {"error": "invalid_grant"})
            access = "eyJ-fake-qbo-" + secrets.token_urlsafe(24)
            self.state.access_tokens.add(access)
            refresh = token
            if self.rotate:
                refresh = "AB11-fake-qbo-" + secrets.token_urlsafe(18)
                self.state.refresh_tokens = {refresh}
            self.state.token_refreshes += 1
        return Response(
            200,
            {
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": refresh,
                "x_refresh_token_expires_in": 8726400,
                "access_token": access,
            },
        )

    # --- control ------------------------------------------------------------------------------

    def control_extra(self, request: Request, route: str) -> Response:
        if request.method == "GET":
            wanted = request.param("entity")
            with self.state.lock:
                rows = [
                    {"entity": entity, **record}
                    for entity, records in sorted(self.state.records.items())
                    if wanted in (None, entity)
                    for record in records.values()
                ]
            return Response(200, {"records": rows})
        body = control_json(request.raw)
        if not isinstance(body, dict) or not isinstance(body.get("entity"), str):
            raise BadRequest(
                "a record needs its entity", [{"field": "entity", "message": "required"}]
            )
        entity = body.pop("entity")
        with self.state.lock:
            if not body.get("Id"):
                self.state.next_id += 1
                body["Id"] = str(self.state.next_id)
            record_id = str(body["Id"])
            previous = self.state.records.get(entity, {}).get(record_id)
            stamp = _time()
            created = (previous or {}).get("MetaData", {}).get("CreateTime", stamp)
            sync = int((previous or {}).get("SyncToken", "-1")) + 1
            body = {
                **body,
                "Id": record_id,
                "SyncToken": str(sync),
                "domain": "QBO",
                "sparse": False,
                "MetaData": {"CreateTime": created, "LastUpdatedTime": stamp},
            }
            self.state.records.setdefault(entity, {})[record_id] = body
        return Response(201 if previous is None else 200, body)
