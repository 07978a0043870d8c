"""What the fake servers in this directory share (``demo_target.py``, ``fake_hubspot.py``).

Standard library only: a ``ThreadingHTTPServer`` tuned for benchmarks (HTTP/1.1 keep-alive,
Content-Length on every answer, TCP_NODELAY, a deep accept queue, daemon threads, no per-request
logging unless ``--verbose``), the request-handler plumbing (reading plain or chunked bodies,
JSON answers, dropping a connection without a byte of answer), the fault engine (fault specs with
count/seconds/ratio/seed/methods/objects, matching, expiry, listing), the control-API helpers
(``/_control`` routing, health, faults, log, stats, reset) and the command-line plumbing (the
"listening on" line, port 0, SIGTERM exits 0).

The scripts run with this directory as ``sys.path[0]`` and import it as ``fakehttp``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import socketserver
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from types import FrameType
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

LOG_LIMIT = 200_000
MAX_BODY_BYTES = 16 * 1024 * 1024

Json = dict[str, Any]


class BadRequest(Exception):
    """A request (a control request, or a record request of the demo target) refused with 400
    ``{"error": "validation", "message": ..., "errors": [...]}``."""

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


# --- faults -----------------------------------------------------------------------------------


@dataclass
class FaultBase:
    """What every injected fault has: which requests it hits, for how long, how often."""

    # The keys of describe(), in the order the fake answers them.
    DESCRIBE_KEYS: ClassVar[tuple[str, ...]] = ()

    id: int
    mode: str
    count: int | None = None
    seconds: float | None = None
    ratio: float | None = None
    seed: int | str | None = None
    status: int = 500
    latency_ms: float = 200
    methods: frozenset[str] | None = None
    objects: frozenset[str] | None = None
    message: str | None = None
    created: float = field(default_factory=time.monotonic)
    hits: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else max(self.count - self.hits, 0)

    def active(self, now: float) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        return self.seconds is None or now < self.created + self.seconds

    def targets(self, method: str, obj: str | None) -> bool:
        """Whether the method and object filters let this request through."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.objects is None or obj in self.objects

    def fires(self) -> bool:
        """Whether the ratio (drawn from the fault's seeded generator) lets it fire now."""
        return self.ratio is None or self.rng.random() < self.ratio

    def describe_extra(self) -> Json:
        """Values of describe() keys only some fakes have."""
        return {}

    def describe(self, now: float) -> Json:
        expires_in = None
        if self.seconds is not None:
            expires_in = round(max(self.created + self.seconds - now, 0.0), 3)
        values: Json = {
            "id": self.id,
            "mode": self.mode,
            "count": self.count,
            "remaining": self.remaining,
            "seconds": self.seconds,
            "expires_in": expires_in,
            "ratio": self.ratio,
            "seed": self.seed,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "objects": sorted(self.objects) if self.objects is not None else None,
            "message": self.message,
            "hits": self.hits,
            "active": self.active(now),
            **self.describe_extra(),
        }
        return {key: values[key] for key in self.DESCRIBE_KEYS}


# How each numeric fault option is checked.
NUMBER_OPTIONS: dict[str, Json] = {
    "count": {"minimum": 1, "integer": True},
    "seconds": {"exclusive_min": True},
    "ratio": {"maximum": 1.0},
    "retry_after": {},
    "latency_ms": {},
    "status": {"minimum": 500, "maximum": 599, "integer": True},
}


def number_option(
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
    ok = (isinstance(value, int) if integer else isinstance(value, int | float)) and not isinstance(
        value, bool
    )
    if ok:
        too_small = value <= minimum if exclusive_min else value < minimum
        ok = not too_small and (maximum is None or value <= maximum)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        if maximum is not None:
            bound += f" and <= {maximum:g}"
        errors.append({"field": name, "message": f"must be {kind} {bound}"})
        return None
    return value


def names_option(
    spec: Json, name: str, errors: list[Json], upper: bool = False
) -> list[str] | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append({"field": name, "message": "must be a list of strings"})
        return None
    return [v.upper() if upper else v for v in value]


def parse_fault_spec(
    spec: Any,
    modes: Iterable[str],
    numbers: tuple[str, ...],
    texts: tuple[str, ...],
    lists: tuple[str, ...],
) -> Json:
    """Check a fault spec: its mode, then the ``numbers``, the seed, the ``texts`` and the
    ``lists`` (``methods`` upper-cased) in the given order; any other key is unknown.

    Answers every option (None when absent) or raises BadRequest with all the field errors.
    """
    if not isinstance(spec, dict):
        raise BadRequest(
            "a fault must be a JSON object",
            [{"field": "body", "message": "expected a JSON object"}],
        )
    modes = tuple(modes)
    errors: list[Json] = []
    mode = spec.get("mode")
    if mode not in modes:
        errors.append({"field": "mode", "message": f"must be one of {', '.join(modes)}"})
    known = {"mode", "seed", *numbers, *texts, *lists}
    errors.extend({"field": k, "message": "unknown fault option"} for k in spec if k not in known)
    options: Json = {"mode": str(mode)}
    for name in numbers:
        options[name] = number_option(spec, name, errors, **NUMBER_OPTIONS[name])
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
        errors.append({"field": "seed", "message": "must be an integer or a string"})
        seed = None
    options["seed"] = seed
    for name in texts:
        options[name] = spec.get(name)
        if options[name] is not None and not isinstance(options[name], str):
            errors.append({"field": name, "message": "must be a string"})
    for name in lists:
        options[name] = names_option(spec, name, errors, upper=name == "methods")
    if errors:
        raise BadRequest("invalid fault", errors)
    return options


def common_fault_args(options: Json) -> Json:
    """The FaultBase keyword arguments of parsed options (defaults filled in)."""
    seconds, ratio = options.get("seconds"), options.get("ratio")
    status, latency_ms = options.get("status"), options.get("latency_ms")
    methods, objects = options.get("methods"), options.get("objects")
    return {
        "mode": options["mode"],
        "count": options.get("count"),
        "seconds": float(seconds) if seconds is not None else None,
        "ratio": float(ratio) if ratio is not None else None,
        "seed": options["seed"],
        "status": status if status is not None else 500,
        "latency_ms": latency_ms if latency_ms is not None else 200,
        "methods": frozenset(methods) if methods is not None else None,
        "objects": frozenset(objects) if objects is not None else None,
        "message": options.get("message"),
        "rng": random.Random(options["seed"]),
    }


F = TypeVar("F", bound=FaultBase)


class StateBase(ABC, Generic[F]):
    """The in-memory state both fakes keep behind one lock: the request log (with a sequence
    number that survives resets), the counters and the faults."""

    lock: threading.Lock
    seq: int
    fault_ids: int
    log: deque[Json]
    faults: list[F]
    by_fault: Counter[str]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0  # never reset, so a log cursor taken before a reset stays valid
        self.fault_ids = 0

    @abstractmethod
    def clear(self) -> None:
        """Each fake defines this."""

    @abstractmethod
    def parse_fault(self, spec: Any, fault_id: int) -> F:
        """Each fake defines this."""

    def install_faults(self, parsed: list[F]) -> tuple[list[F], Json]:
        """(the faults to keep, extra keys of the answer) for newly parsed faults, under the
        lock. By default every fault is kept."""
        return parsed, {}

    # --- faults -------------------------------------------------------------------------------

    def first_fault(self, match: Callable[[F], bool]) -> F | None:
        """The first active fault that matches and fires for this request (counts the hit)."""
        if not self.faults:
            return None
        now = time.monotonic()
        with self.lock:
            for fault in self.faults:
                if not fault.active(now) or not match(fault) or not fault.fires():
                    continue
                fault.hits += 1
                self.by_fault[fault.mode] += 1
                return fault
        return None

    def add_faults(self, body: Any) -> Response:
        specs = body if isinstance(body, list) else [body]
        with self.lock:
            first = self.fault_ids + 1
            parsed = [self.parse_fault(spec, first + i) for i, spec in enumerate(specs)]
            self.fault_ids += len(parsed)
            added, extra = self.install_faults(parsed)
            self.faults.extend(added)
            now = time.monotonic()
            answer: Json = {"added": [f.describe(now) for f in added], **extra}
            answer["faults"] = [f.describe(now) for f in self.faults]
            return Response(201, answer)

    def list_faults(self) -> Json:
        with self.lock:
            now = time.monotonic()
            return {"faults": [f.describe(now) for f in self.faults]}

    def clear_faults(self) -> Json:
        with self.lock:
            self.faults = []
            return {"faults": []}

    def active_faults(self, now: float) -> int:
        return sum(f.active(now) for f in self.faults)

    # --- control reads ------------------------------------------------------------------------

    def log_since(self, since: int, limit: int | None) -> Json:
        with self.lock:
            start = 0
            if self.log:
                start = min(max(since - self.log[0]["seq"] + 1, 0), len(self.log))
            stop = None if limit is None else start + limit
            return {"entries": list(islice(self.log, start, stop)), "last_seq": self.seq}

    @abstractmethod
    def stats(self) -> Json:
        """Each fake defines this."""

    def reset(self) -> Json:
        with self.lock:
            self.clear()
            return {"ok": True, "last_seq": self.seq}


def new_log() -> deque[Json]:
    return deque(maxlen=LOG_LIMIT)


# --- control helpers --------------------------------------------------------------------------


def control_json(raw: bytes) -> Any:
    """A control request's JSON body (None when empty)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(
            "invalid JSON", [{"field": "body", "message": f"invalid JSON: {exc}"}]
        ) from exc


def query_int(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
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


# --- HTTP -------------------------------------------------------------------------------------


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        state: StateBase[Any],
        verbose: bool,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.state = state
        self.verbose = verbose

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a reverse lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class JsonHandler(BaseHTTPRequestHandler, ABC):
    """Reads bodies, routes ``/_control`` and everything else, writes JSON answers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    json_type = "application/json"
    ensure_ascii = True
    length_on_empty = False  # send "Content-Length: 0" with a 204
    keep_blank_values = False  # in the parsed query
    # /_control routes and their allowed methods; health, faults, log, stats and reset are
    # answered here, the others by control_extra().
    control_routes: ClassVar[dict[str, str]] = {}

    @property
    def fake(self) -> FakeServer:
        assert isinstance(self.server, FakeServer)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        if self.fake.verbose:
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

    # --- hooks --------------------------------------------------------------------------------

    @abstractmethod
    def handle_api(self, path: str, query: dict[str, list[str]], raw: bytes) -> Response:
        """Each fake defines this."""

    @abstractmethod
    def control_extra(
        self, method: str, route: str, query: dict[str, list[str]], raw: bytes
    ) -> Response:
        """Each fake's own /_control routes."""

    def framing_error(self, message: str) -> Any:
        """The body answering an unreadable request body."""
        return validation_body(message, [{"field": "body", "message": message}])

    def first_headers(self, response: Response) -> dict[str, str]:
        """Headers sent before the response's own."""
        return {}

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
        self._send(Response(status, self.framing_error(message), {"Connection": "close"}))

    def _send(self, response: Response) -> None:
        if response.drop:
            self._drop()
            return
        self.send_response(response.status)
        for name, value in self.first_headers(response).items():
            self.send_header(name, value)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status == 204 or response.status < 200:
            if self.length_on_empty:
                self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(
            response.payload, separators=(",", ":"), ensure_ascii=self.ensure_ascii
        ).encode("utf-8")
        self.send_header("Content-Type", self.json_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _dispatch(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=self.keep_blank_values)
        try:
            if path == "/_control" or path.startswith("/_control/"):
                route = path[len("/_control") :].strip("/")
                response = self._control(self.command, route, query, raw)
            else:
                response = self.handle_api(path, query, raw)
        except BadRequest as exc:
            response = Response(400, validation_body(exc.message, exc.errors))
        self._send(response)

    def _control(
        self, method: str, route: str, query: dict[str, list[str]], raw: bytes
    ) -> Response:
        state = self.fake.state
        allowed = self.control_routes
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
            return state.add_faults(control_json(raw))
        if route == "log":
            since = query_int(query, "since", 0)
            limit = query_int(query, "limit", None)
            return Response(200, state.log_since(since or 0, limit))
        if route == "stats":
            return Response(200, state.stats())
        if route == "reset":
            return Response(200, state.reset())
        return self.control_extra(method, route, query, raw)


# --- command line -----------------------------------------------------------------------------


def cli_parser(description: str, port: int) -> argparse.ArgumentParser:
    """A parser with --host and --port (0 picks a free one)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="bind address [127.0.0.1]")
    parser.add_argument("--port", type=int, default=port, help=f"port; 0 picks a free one [{port}]")
    return parser


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def base_url(server: FakeServer) -> str:
    """``http://HOST:PORT`` of the bound server (the port chosen for port 0)."""
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(server: FakeServer, name: str) -> int:
    """Print ``NAME listening on URL`` and serve until SIGTERM or Ctrl-C; exit status 0."""

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"{name} listening on {base_url(server)}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
