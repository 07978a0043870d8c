"""The fake for the ``http`` connector: a generic REST CRM, for the demo, the integration and
fault tests, benchmarks, and anyone trying a configuration without a CRM of their own.

``crmhub serve --demo`` runs it as ``python -m connectors.fakes.http --port 8900``
(``CRMHUB_DEMO_PORT``); the tests and benchmarks start it the same way with ``--port 0`` and
read the chosen port from the one line it prints on start (``demo target listening on
http://HOST:PORT``). Unit tests run ``HttpCrm`` in-process behind
``connectors.fakes.transport.FakeTransport``.

Over HTTP it keeps up with a benchmark pushing thousands of requests a second (see
``server.py``). All state sits in memory behind one lock.

Its answers follow common CRM REST conventions, which is what the hub's generic ``http``
connector is written against:

* ``PUT /{object}/{key}`` upserts by merging the JSON object body into the stored record
  (fields not sent are kept): 201 with the stored record when created, 200 when updated. Keys
  arrive URL-encoded (``alice%40example.com``) and are stored decoded.
* ``GET /{object}/{key}`` answers 200 with the record or 404 ``{"error": "not_found"}``.
* ``GET /{object}`` answers 200 ``{"records": [...]}``; ``DELETE /{object}/{key}`` answers 204.
* ``GET /{object}?updated_since=T[&limit=N][&cursor=C]`` lists the records written at or after
  ``T`` (inclusive; ISO 8601 or epoch ms), oldest first (then by key), ``limit`` (default 100)
  at a time: ``{"data": [{...fields, "id": key, "updated_at": stamp}], "next_cursor": C}``
  (``null`` on the last page); ``updated_at`` is when the record was last written (ISO 8601
  UTC, milliseconds), kept apart from its fields: what a polling source reads.
* A body that is not a JSON object answers 400 ``{"error": "validation", "message": ...,
  "errors": [{"field": ..., "message": ...}]}``.
* With ``--token`` (or ``DEMO_TARGET_TOKEN``) record requests without
  ``Authorization: Bearer <token>`` answer 401 ``{"error": "unauthorized"}``.
* Injected faults answer 429 with a Retry-After header, 5xx, 401 or 400 as a real CRM would,
  add latency, or drop the connection without any answer.

``PATCH`` merges like ``PUT``. With ``--prefix /api`` (or ``DEMO_TARGET_PREFIX``) the record API
lives under that path instead (``/api/{object}/{key}``); the control API never moves.

A record answer is the stored fields plus ``"key"`` (always the decoded path key). How many
writes each record received is kept aside (``GET /_control/records``), never mixed into it.

The control API under ``/_control`` is never faulted and never checks the token:

* ``GET  /_control/health`` -> ``{"ok": true}``
* ``POST /_control/faults`` with one fault spec (or a list of them) -> 201
  ``{"added": [...], "faults": [...]}``. A spec is ``{"mode": "error500" | "rate_limit" |
  "unauthorized" | "validation" | "latency" | "drop", "count": N, "seconds": T, "ratio": r,
  "seed": s, "retry_after": secs, "latency_ms": ms, "methods": ["PUT"], "objects":
  ["contacts"], "status": 5xx, "field": name, "message": text}``; all but ``mode`` optional.
  Faults stack in order and each record request takes the first active one that matches.
* ``GET /_control/faults`` -> ``{"faults": [...]}``; ``DELETE /_control/faults`` clears them.
* ``GET  /_control/log?since=N&limit=M`` -> ``{"entries": [...], "last_seq": n}``; each entry is
  ``{"seq", "time", "method", "path", "object", "key", "status", "body", "fault"}``.
* ``GET  /_control/stats`` -> ``{"requests", "by_status", "records", "writes", ...}``.
* ``GET  /_control/records[?object=name]`` -> every record with its write count.
* ``POST /_control/reset`` clears records, the log, the counters and the faults.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from connectors.fakes.app import (
    BadRequest,
    FakeApp,
    Json,
    Request,
    Response,
    query_int,
    validation_body,
)
from connectors.fakes.faults import FaultBase, common_fault_args, parse_fault_spec
from connectors.fakes.server import cli_parser, listen, serve
from connectors.fakes.state import StateBase, new_log

FAULT_MODES = ("error500", "rate_limit", "unauthorized", "validation", "latency", "drop")

__all__ = ["BadRequest", "Fault", "HttpCrm", "State", "main"]


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
        "retry_after",
        "latency_ms",
        "methods",
        "objects",
        "status",
        "field",
        "message",
        "hits",
        "active",
    )

    retry_after: float = 1
    error_field: str | None = None

    def matches(self, method: str, obj: str) -> bool:
        return self.targets(method, obj)

    def describe_extra(self) -> Json:
        return {"retry_after": self.retry_after, "field": self.error_field}

    def answer(self, body: Any) -> Response:
        """The response for an error-answering mode (not latency, not drop)."""
        if self.mode == "error500":
            return Response(self.status, {"error": "internal"})
        if self.mode == "rate_limit":
            header = (
                str(int(self.retry_after))
                if float(self.retry_after).is_integer()
                else str(self.retry_after)
            )
            return Response(
                429,
                {"error": "rate_limited", "retry_after": self.retry_after},
                {"Retry-After": header},
            )
        if self.mode == "unauthorized":
            return Response(
                401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Bearer realm="demo-target"'}
            )
        name = self.error_field
        if name is None:
            name = next(iter(body), "body") if isinstance(body, dict) and body else "body"
        message = self.message or "rejected by an injected validation fault"
        return Response(400, validation_body(message, [{"field": name, "message": message}]))


def parse_fault(spec: Any, fault_id: int) -> Fault:
    options = parse_fault_spec(
        spec,
        FAULT_MODES,
        numbers=("count", "seconds", "ratio", "retry_after", "latency_ms", "status"),
        texts=("field", "message"),
        lists=("methods", "objects"),
    )
    retry_after = options["retry_after"]
    return Fault(
        id=fault_id,
        **common_fault_args(options),
        retry_after=retry_after if retry_after is not None else 1,
        error_field=options["field"],
    )


def parse_record_body(raw: bytes) -> tuple[Json | None, Any, list[Json]]:
    """(the object or None, what the log keeps as the body, field errors)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return (
            None,
            raw.decode("utf-8", "replace"),
            [{"field": "body", "message": "body is not UTF-8"}],
        )
    if not text.strip():
        return None, None, [{"field": "body", "message": "a JSON object body is required"}]
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, text, [{"field": "body", "message": f"invalid JSON: {exc}"}]
    if not isinstance(value, dict):
        return None, value, [{"field": "body", "message": "expected a JSON object"}]
    return value, value, []


def _instant_ms(text: str) -> int | None:
    if text.strip().isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class State(StateBase[Fault]):
    """Records, write counts, the request log, counters and faults, behind one lock."""

    def __init__(self) -> None:
        super().__init__()
        self.clear()

    def clear(self) -> None:
        self.records: dict[str, dict[str, Json]] = {}
        self.writes: dict[tuple[str, str], int] = {}
        # when each record was last written (ms): listings by `updated_since`
        self.stamps: dict[tuple[str, str], int] = {}
        self.total_writes = 0
        self.log = new_log()
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_fault = Counter()
        self.faults = []

    def parse_fault(self, spec: Any, fault_id: int) -> Fault:
        return parse_fault(spec, fault_id)

    def take_fault(self, method: str, obj: str) -> Fault | None:
        """The first active matching fault that fires for this request (counts the hit)."""
        return self.first_fault(lambda fault: fault.matches(method, obj))

    # --- record requests ----------------------------------------------------------------------

    def _log(
        self,
        method: str,
        path: str,
        obj: str,
        key: str | None,
        status: int | None,
        body: Any,
        fault: str | None,
    ) -> None:
        self.seq += 1
        self.requests += 1
        self.by_status["dropped" if status is None else str(status)] += 1
        self.log.append(
            {
                "seq": self.seq,
                "time": time.time(),
                "method": method,
                "path": path,
                "object": obj,
                "key": key,
                "status": status,
                "body": body,
                "fault": fault,
            }
        )

    def handle(
        self,
        method: str,
        path: str,
        obj: str,
        key: str | None,
        raw: bytes,
        authorized: bool,
        fault: Fault | None,
        latency: bool,
        query: dict[str, list[str]] | None = None,
    ) -> Response:
        parsed: Json | None = None
        logged_body: Any = None
        errors: list[Json] = []
        if method in ("PUT", "PATCH"):
            parsed, logged_body, errors = parse_record_body(raw)
        fault_name = "latency" if latency else (fault.mode if fault else None)
        if fault is not None and fault.mode == "drop":
            response = Response(0, drop=True)
        elif fault is not None:
            response = fault.answer(parsed)
        elif not authorized:
            response = Response(
                401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Bearer realm="demo-target"'}
            )
        else:
            response = Response(0)  # filled in below, under the lock
        with self.lock:
            if response.status == 0 and not response.drop:
                if method == "GET" and key is None and query and "updated_since" in query:
                    response = self._listing(obj, query)
                else:
                    response = self._serve(method, obj, key, parsed, errors)
            self._log(
                method,
                path,
                obj,
                key,
                None if response.drop else response.status,
                logged_body,
                fault_name,
            )
        return response

    def _serve(
        self, method: str, obj: str, key: str | None, body: Json | None, errors: list[Json]
    ) -> Response:
        if key is None:
            if method == "GET":
                table = self.records.get(obj, {})
                return Response(200, {"records": [{**f, "key": k} for k, f in table.items()]})
            return Response(405, {"error": "method_not_allowed"}, {"Allow": "GET"})
        if method == "GET":
            fields = self.records.get(obj, {}).get(key)
            if fields is None:
                return Response(404, {"error": "not_found"})
            return Response(200, {**fields, "key": key})
        if method in ("PUT", "PATCH"):
            if body is None:
                return Response(400, validation_body("the body must be a JSON object", errors))
            table = self.records.setdefault(obj, {})
            fields = table.get(key)
            created = fields is None
            if fields is None:
                fields = table[key] = {}
            fields.update(body)
            self.stamps[(obj, key)] = int(time.time() * 1000)
            self.writes[(obj, key)] = self.writes.get((obj, key), 0) + 1
            self.total_writes += 1
            return Response(201 if created else 200, {**fields, "key": key})
        if method == "DELETE":
            self.records.get(obj, {}).pop(key, None)
            self.writes.pop((obj, key), None)
            self.stamps.pop((obj, key), None)
            return Response(204)
        return Response(405, {"error": "method_not_allowed"}, {"Allow": "GET, PUT, PATCH, DELETE"})

    def _listing(self, obj: str, query: dict[str, list[str]]) -> Response:
        since = _instant_ms(query["updated_since"][-1])
        if since is None:
            return Response(400, validation_body("updated_since is not a time", []))
        limit = query_int(query, "limit", 100) or 100
        cursor = query.get("cursor", [""])[-1]
        offset = int(cursor) if cursor.isdigit() else 0
        rows = sorted(
            (self.stamps.get((obj, k), 0), k)
            for k in self.records.get(obj, {})
            if self.stamps.get((obj, k), 0) >= since
        )
        page = rows[offset : offset + limit]
        data = [
            {**self.records[obj][k], "id": k, "updated_at": _iso_ms(stamp)} for stamp, k in page
        ]
        more = str(offset + limit) if offset + limit < len(rows) else None
        return Response(200, {"data": data, "next_cursor": more})

    # --- control reads ------------------------------------------------------------------------

    def stats(self) -> Json:
        with self.lock:
            return {
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "records": sum(len(t) for t in self.records.values()),
                "writes": self.total_writes,
                "faults_applied": dict(self.by_fault),
                "faults_active": self.active_faults(time.monotonic()),
                "log_entries": len(self.log),
                "last_seq": self.seq,
            }

    def dump(self, obj: str | None) -> Json:
        with self.lock:
            return {
                "records": [
                    {"object": o, "key": k, "fields": dict(f), "writes": self.writes.get((o, k), 0)}
                    for o, table in self.records.items()
                    if obj is None or o == obj
                    for k, f in table.items()
                ]
            }


class HttpCrm(FakeApp):
    """The generic REST CRM. ``token``: record requests need ``Authorization: Bearer TOKEN``;
    ``prefix``: the record API lives under that path (``/api/{object}/{key}``)."""

    name = "demo target"
    server_version = "crmhub-demo-target/1.0"
    control_routes: ClassVar[dict[str, str]] = {
        "health": "GET",
        "faults": "GET, POST, DELETE",
        "log": "GET",
        "stats": "GET",
        "records": "GET",
        "reset": "POST",
    }

    def __init__(self, token: str | None = None, prefix: str = "") -> None:
        self.state: State = State()
        self.token = token
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""

    def control_extra(self, request: Request, route: str) -> Response:
        # route == "records"
        return Response(200, self.state.dump(request.query.get("object", [None])[-1]))

    def records(self, obj: str | None = None) -> list[Json]:
        """Every stored record (of one object), as ``GET /_control/records`` lists them."""
        records: list[Json] = self.state.dump(obj)["records"]
        return records

    # --- record API ---------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        method, path = request.method, request.path
        rest = path
        if self.prefix:
            if rest != self.prefix and not rest.startswith(self.prefix + "/"):
                return Response(404, {"error": "not_found"})
            rest = rest[len(self.prefix) :]
        segments = rest.split("/")[1:]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments.pop()
        if not segments or segments == [""]:
            if method == "GET":
                return Response(200, {"service": "crmhub demo target", "ok": True})
            return Response(404, {"error": "not_found"})
        if len(segments) > 2 or "" in segments:
            return Response(404, {"error": "not_found"})
        obj = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) == 2 else None
        state = self.state
        fault = state.take_fault(method, obj)
        latency = False
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000.0)
            fault, latency = None, True
        authorized = True
        if self.token is not None:
            expected = f"Bearer {self.token}".encode()
            given = request.headers.get("authorization", "").encode("utf-8", "replace")
            authorized = hmac.compare_digest(given, expected)
        return state.handle(
            method, path, obj, key, request.raw, authorized, fault, latency, request.query
        )


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = cli_parser("A fake generic REST CRM for crmhub demos.", 8900, prog)
    parser.add_argument(
        "--token",
        default=os.environ.get("DEMO_TARGET_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' [env DEMO_TARGET_TOKEN]",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("DEMO_TARGET_PREFIX", ""),
        help="path prefix for the record API, e.g. /api [env DEMO_TARGET_PREFIX]",
    )
    args = parser.parse_args(argv)
    app = HttpCrm(args.token, args.prefix)
    return serve(listen(app, args.host, args.port, args.verbose))


if __name__ == "__main__":
    sys.exit(main())
