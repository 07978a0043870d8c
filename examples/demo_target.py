#!/usr/bin/env python3
"""A fake "generic REST CRM" for the crmhub demo, the integration and fault tests, and benchmarks.

`crmhub serve --demo` runs it as ``python examples/demo_target.py --port 8900``; the tests and
benchmarks start it as a subprocess with ``--port 0`` and read the chosen port from the one
line it prints on start (``demo target listening on http://HOST:PORT``).

It is a single file on the standard library only (``http.server.ThreadingHTTPServer``): HTTP/1.1
keep-alive, Content-Length on every answer, TCP_NODELAY, a deep accept queue, and no logging per
request unless ``--verbose``, so it keeps up with a benchmark pushing thousands of requests a
second. All state sits in memory behind one lock.

Its answers follow common CRM REST conventions, which is what the hub's generic ``http``
connector is written against:

* ``PUT /{object}/{key}`` upserts by merging the JSON object body into the stored record
  (fields not sent are kept): 201 with the stored record when created, 200 when updated. Keys
  arrive URL-encoded (``alice%40example.com``) and are stored decoded.
* ``GET /{object}/{key}`` answers 200 with the record or 404 ``{"error": "not_found"}``.
* ``GET /{object}`` answers 200 ``{"records": [...]}``; ``DELETE /{object}/{key}`` answers 204.
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

import argparse
import contextlib
import hmac
import json
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LOG_LIMIT = 200_000
MAX_BODY_BYTES = 16 * 1024 * 1024
FAULT_MODES = ("error500", "rate_limit", "unauthorized", "validation", "latency", "drop")
JSON_TYPE = "application/json"

Json = dict[str, Any]


class BadRequest(Exception):
    """A request the target refuses with 400 and field errors."""

    def __init__(self, message: str, errors: list[Json]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def validation_body(message: str, errors: list[Json]) -> Json:
    return {"error": "validation", "message": message, "errors": errors}


@dataclass
class Response:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class Fault:
    id: int
    mode: str
    count: int | None = None
    seconds: float | None = None
    ratio: float | None = None
    seed: int | str | None = None
    retry_after: float = 1
    latency_ms: float = 200
    methods: frozenset[str] | None = None
    objects: frozenset[str] | None = None
    status: int = 500
    error_field: str | None = None
    message: str | None = None
    created: float = field(default_factory=time.monotonic)
    hits: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random())

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else max(self.count - self.hits, 0)

    def active(self, now: float) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        return self.seconds is None or now < self.created + self.seconds

    def matches(self, method: str, obj: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.objects is None or obj in self.objects

    def describe(self, now: float) -> Json:
        expires_in = None
        if self.seconds is not None:
            expires_in = round(max(self.created + self.seconds - now, 0.0), 3)
        return {
            "id": self.id,
            "mode": self.mode,
            "count": self.count,
            "remaining": self.remaining,
            "seconds": self.seconds,
            "expires_in": expires_in,
            "ratio": self.ratio,
            "seed": self.seed,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "objects": sorted(self.objects) if self.objects is not None else None,
            "status": self.status,
            "field": self.error_field,
            "message": self.message,
            "hits": self.hits,
            "active": self.active(now),
        }

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


def _number(
    spec: Json,
    name: str,
    errors: list[Json],
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    integer: bool = False,
    exclusive_min: bool = False,
) -> Any:
    value = spec.get(name)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    ok = (isinstance(value, int) if integer else isinstance(value, int | float)) and not isinstance(
        value, bool
    )
    if ok:
        too_small = value <= minimum if exclusive_min else value < minimum
        ok = not too_small and (maximum is None or value <= maximum)
    if not ok:
        bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        if maximum is not None:
            bound += f" and <= {maximum:g}"
        errors.append({"field": name, "message": f"must be {kind} {bound}"})
        return None
    return value


def _names(spec: Json, name: str, errors: list[Json], upper: bool = False) -> frozenset[str] | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append({"field": name, "message": "must be a list of strings"})
        return None
    return frozenset(v.upper() if upper else v for v in value)


def parse_fault(spec: Any, fault_id: int) -> Fault:
    if not isinstance(spec, dict):
        raise BadRequest(
            "a fault must be a JSON object",
            [{"field": "body", "message": "expected a JSON object"}],
        )
    errors: list[Json] = []
    mode = spec.get("mode")
    if mode not in FAULT_MODES:
        errors.append({"field": "mode", "message": f"must be one of {', '.join(FAULT_MODES)}"})
    known = {
        "mode",
        "count",
        "seconds",
        "ratio",
        "seed",
        "retry_after",
        "latency_ms",
        "methods",
        "objects",
        "status",
        "field",
        "message",
    }
    errors.extend({"field": k, "message": "unknown fault option"} for k in spec if k not in known)
    count = _number(spec, "count", errors, minimum=1, integer=True)
    seconds = _number(spec, "seconds", errors, exclusive_min=True)
    ratio = _number(spec, "ratio", errors, maximum=1.0)
    retry_after = _number(spec, "retry_after", errors)
    latency_ms = _number(spec, "latency_ms", errors)
    status = _number(spec, "status", errors, minimum=500, maximum=599, integer=True)
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
        errors.append({"field": "seed", "message": "must be an integer or a string"})
        seed = None
    texts: dict[str, str | None] = {}
    for name in ("field", "message"):
        texts[name] = spec.get(name)
        if texts[name] is not None and not isinstance(texts[name], str):
            errors.append({"field": name, "message": "must be a string"})
    methods = _names(spec, "methods", errors, upper=True)
    objects = _names(spec, "objects", errors)
    if errors:
        raise BadRequest("invalid fault", errors)
    return Fault(
        id=fault_id,
        mode=str(mode),
        count=count,
        seconds=float(seconds) if seconds is not None else None,
        ratio=float(ratio) if ratio is not None else None,
        seed=seed,
        retry_after=retry_after if retry_after is not None else 1,
        latency_ms=latency_ms if latency_ms is not None else 200,
        methods=methods,
        objects=objects,
        status=status if status is not None else 500,
        error_field=texts["field"],
        message=texts["message"],
        rng=random.Random(seed),
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


class State:
    """Records, write counts, the request log, counters and faults, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0  # never reset, so a cursor taken before a reset stays valid
        self.fault_ids = 0
        self.clear()

    def clear(self) -> None:
        self.records: dict[str, dict[str, Json]] = {}
        self.writes: dict[tuple[str, str], int] = {}
        self.total_writes = 0
        self.log: deque[Json] = deque(maxlen=LOG_LIMIT)
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.faults: list[Fault] = []

    # --- faults -------------------------------------------------------------------------------

    def take_fault(self, method: str, obj: str) -> Fault | None:
        """The first active matching fault that fires for this request (counts the hit)."""
        if not self.faults:
            return None
        now = time.monotonic()
        with self.lock:
            for fault in self.faults:
                if not fault.active(now) or not fault.matches(method, obj):
                    continue
                if fault.ratio is not None and fault.rng.random() >= fault.ratio:
                    continue
                fault.hits += 1
                self.by_fault[fault.mode] += 1
                return fault
        return None

    def add_faults(self, body: Any) -> Response:
        specs = body if isinstance(body, list) else [body]
        with self.lock:
            added: list[Fault] = []
            for spec in specs:
                added.append(parse_fault(spec, self.fault_ids + len(added) + 1))
            self.fault_ids += len(added)
            self.faults.extend(added)
            now = time.monotonic()
            return Response(
                201,
                {
                    "added": [f.describe(now) for f in added],
                    "faults": [f.describe(now) for f in self.faults],
                },
            )

    def list_faults(self) -> Json:
        with self.lock:
            now = time.monotonic()
            return {"faults": [f.describe(now) for f in self.faults]}

    def clear_faults(self) -> Json:
        with self.lock:
            self.faults = []
            return {"faults": []}

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
            self.writes[(obj, key)] = self.writes.get((obj, key), 0) + 1
            self.total_writes += 1
            return Response(201 if created else 200, {**fields, "key": key})
        if method == "DELETE":
            self.records.get(obj, {}).pop(key, None)
            self.writes.pop((obj, key), None)
            return Response(204)
        return Response(405, {"error": "method_not_allowed"}, {"Allow": "GET, PUT, PATCH, DELETE"})

    # --- control reads ------------------------------------------------------------------------

    def log_since(self, since: int, limit: int | None) -> Json:
        with self.lock:
            start = 0
            if self.log:
                start = min(max(since - self.log[0]["seq"] + 1, 0), len(self.log))
            stop = None if limit is None else start + limit
            entries = list(islice(self.log, start, stop))
            return {"entries": entries, "last_seq": self.seq}

    def stats(self) -> Json:
        with self.lock:
            return {
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "records": sum(len(t) for t in self.records.values()),
                "writes": self.total_writes,
                "faults_applied": dict(self.by_fault),
                "faults_active": sum(f.active(time.monotonic()) for f in self.faults),
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

    def reset(self) -> Json:
        with self.lock:
            self.clear()
            return {"ok": True, "last_seq": self.seq}


class DemoTargetServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], token: str | None, verbose: bool, prefix: str = ""
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, DemoTargetHandler)
        self.state = State()
        self.token = token
        self.verbose = verbose
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a reverse lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class DemoTargetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crmhub-demo-target/1.0"
    disable_nagle_algorithm = True

    @property
    def target(self) -> DemoTargetServer:
        assert isinstance(self.server, DemoTargetServer)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        if self.target.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # --- plumbing -----------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering an unreadable one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    length = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._bad_framing("malformed chunked body")
                    return None
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    self._bad_framing("body too large", 413)
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(1024)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._bad_framing("invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self._bad_framing("body too large", 413)
            return None
        return self.rfile.read(length) if length else b""

    def _bad_framing(self, message: str, status: int = 400) -> None:
        self.close_connection = True
        self._send(
            Response(
                status,
                validation_body(message, [{"field": "body", "message": message}]),
                {"Connection": "close"},
            )
        )

    def _send(self, response: Response) -> None:
        if response.drop:
            self._drop()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status == 204 or response.status < 200:
            self.end_headers()
            return
        data = json.dumps(response.payload, separators=(",", ":")).encode()
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _json_body(self, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadRequest(
                "invalid JSON", [{"field": "body", "message": f"invalid JSON: {exc}"}]
            ) from exc

    def _dispatch(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        method = self.command
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path == "/_control" or path.startswith("/_control/"):
                response = self._control(
                    method, path[len("/_control") :].strip("/"), parse_qs(parts.query), raw
                )
            else:
                response = self._record(method, path, raw)
        except BadRequest as exc:
            response = Response(400, validation_body(exc.message, exc.errors))
        self._send(response)

    # --- record API ---------------------------------------------------------------------------

    def _record(self, method: str, path: str, raw: bytes) -> Response:
        target = self.target
        rest = path
        if target.prefix:
            if rest != target.prefix and not rest.startswith(target.prefix + "/"):
                return Response(404, {"error": "not_found"})
            rest = rest[len(target.prefix) :]
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
        state = target.state
        fault = state.take_fault(method, obj)
        latency = False
        if fault is not None and fault.mode == "latency":
            time.sleep(fault.latency_ms / 1000.0)
            fault, latency = None, True
        authorized = True
        if target.token is not None:
            expected = f"Bearer {target.token}".encode()
            given = self.headers.get("Authorization", "").encode("utf-8", "replace")
            authorized = hmac.compare_digest(given, expected)
        return state.handle(method, path, obj, key, raw, authorized, fault, latency)

    # --- control API --------------------------------------------------------------------------

    def _control(
        self, method: str, route: str, query: dict[str, list[str]], raw: bytes
    ) -> Response:
        state = self.target.state
        allowed = {
            "health": "GET",
            "faults": "GET, POST, DELETE",
            "log": "GET",
            "stats": "GET",
            "records": "GET",
            "reset": "POST",
        }
        if route not in allowed:
            return Response(404, {"error": "not_found"})
        if method not in allowed[route].split(", "):
            return Response(405, {"error": "method_not_allowed"}, {"Allow": allowed[route]})
        if route == "health":
            return Response(200, {"ok": True})
        if route == "faults":
            if method == "GET":
                return Response(200, state.list_faults())
            if method == "DELETE":
                return Response(200, state.clear_faults())
            return state.add_faults(self._json_body(raw))
        if route == "log":
            since = _query_int(query, "since", 0)
            limit = _query_int(query, "limit", None)
            return Response(200, state.log_since(since or 0, limit))
        if route == "stats":
            return Response(200, state.stats())
        if route == "records":
            return Response(200, state.dump(query.get("object", [None])[-1]))
        return Response(200, state.reset())


def _query_int(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(
            f"invalid {name}", [{"field": name, "message": "must be a non-negative integer"}]
        )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake generic REST CRM for crmhub demos.")
    parser.add_argument("--host", default="127.0.0.1", help="bind address [127.0.0.1]")
    parser.add_argument("--port", type=int, default=8900, help="port; 0 picks a free one [8900]")
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
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    server = DemoTargetServer((args.host, args.port), args.token, args.verbose, args.prefix)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"demo target listening on http://{shown}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
