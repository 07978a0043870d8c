"""A fake as a plain application object: one request in, one ``Response`` out.

The HTTP server (``server.py``) and the httpx transport (``transport.py``) both call
``FakeApp.handle``, so a test talks to the very same fake over loopback or in-process, and the
answer is the same to the byte (status, headers, body) either way. What differs is only what
HTTP itself does: reading a chunked body, keep-alive, dropping a connection.

A fake's own requests go to ``handle_api``; ``/_control`` is routed here (health, faults, log,
stats and reset for every fake; the rest by ``control_extra``), is never faulted and never
checks credentials.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from connectors.fakes.state import StateBase

Json = dict[str, Any]


class BadRequest(Exception):
    """A request (a control request, or a record request of the http fake) refused with 400
    ``{"error": "validation", "message": ..., "errors": [...]}``."""

    def __init__(self, message: str, errors: list[Json]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def validation_body(message: str, errors: list[Json]) -> Json:
    return {"error": "validation", "message": message, "errors": errors}


@dataclass
class Response:
    """An answer: ``payload`` is JSON-encoded into ``content`` by ``FakeApp.finish``, which
    also completes ``headers``. ``drop``: close the connection without a byte of answer."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    content: bytes = b""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def param_list(self, name: str) -> list[str] | None:
        """A list parameter: repeated and/or comma separated (``properties=a,b``)."""
        values = self.query.get(name)
        if values is None:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]


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


def control_records(
    request: Request,
    body: Any,
    param: str,
    tables: Mapping[str, Mapping[Any, Any]],
    lock: Any,
    add: Callable[..., Any],
    edit: Callable[..., None],
    *,
    errors: tuple[type[Exception], ...] = (KeyError, ValueError),
    id_key: str = "id",
) -> Response:
    """`/_control/records`: a POST saves records (save_records); a GET lists every record,
    or those of the table `?{param}=` names, each with `_{param}`: its table."""
    if request.method == "POST":
        return save_records(body, param, add, edit, errors, id_key)
    wanted = request.param(param)
    with lock:
        chosen = {wanted: tables.get(wanted, {})} if wanted else tables
        rows = [dict(r, **{f"_{param}": n}) for n, t in chosen.items() for r in t.values()]
    return Response(200, {"records": rows})


def control_limits(state: Any, body: Any, settable: Sequence[str], used: str) -> Response:
    """`/_control/limits`: set (from a POST's body) the fake's limits among `settable` (its
    config's) and what it counts as `used` so far; answered with all of them."""
    with state.lock:
        if isinstance(body, dict):
            for key in settable:
                if key in body:
                    setattr(state.config, key, int(body[key]))
            if used in body:
                setattr(state, used, int(body[used]))
        shown = {key: getattr(state.config, key) for key in settable}
        return Response(200, {**shown, used: getattr(state, used)})


def save_records(
    body: Any,
    param: str,
    add: Callable[..., Any],
    edit: Callable[..., None],
    errors: tuple[type[Exception], ...] = (KeyError, ValueError),
    id_key: str = "id",
) -> Response:
    """`POST /_control/records`: one record (made as a user makes it: `{param: object,
    ...values}` answered `{"id"}`), or a list of them made, or edited (those with an
    `id_key`), one after another, answered `{"ids"}`: many within one second's stamp.
    `errors`: what `add` and `edit` raise for the test's own mistake (an unknown field, object
    or id)."""
    items = body if isinstance(body, list) else [body or {}]
    ids = []
    for item in items:
        values = dict(item)
        target = str(values.pop(param, ""))
        record_id = values.pop(id_key, None)
        try:
            if record_id is None:
                ids.append(add(target, **values))
            else:
                edit(target, record_id, **values)
                ids.append(record_id)
        except errors as exc:
            return Response(400, {"error": "validation", "message": str(exc)})
    return Response(201, {"ids": ids} if isinstance(body, list) else {"id": ids[0]})


class FakeApp(ABC):
    """What every fake is: its state, its API, the shared control API, its answers' encoding."""

    #: the first word of the line it prints on start (``NAME listening on URL``)
    name: ClassVar[str] = "fake"
    server_version: ClassVar[str] = "crmhub-fake/1.0"
    json_type: ClassVar[str] = "application/json"
    ensure_ascii: ClassVar[bool] = True
    length_on_empty: ClassVar[bool] = False  # send "Content-Length: 0" with a 204
    keep_blank_values: ClassVar[bool] = False  # in the parsed query
    # /_control routes and their allowed methods; health, faults, log, stats and reset are
    # answered here, the others by control_extra().
    control_routes: ClassVar[dict[str, str]] = {}

    state: StateBase[Any]

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Answer one request. ``path`` as sent (still percent-encoded), ``query`` the raw
        query string, ``body`` the whole (de-chunked) body."""
        request = Request(
            method.upper(),
            path,
            parse_qs(query, keep_blank_values=self.keep_blank_values),
            {name.lower(): value for name, value in headers.items()},
            body,
        )
        try:
            if path == "/_control" or path.startswith("/_control/"):
                response = self._control(request, path[len("/_control") :].strip("/"))
            else:
                response = self.handle_api(request)
        except BadRequest as exc:
            response = Response(400, validation_body(exc.message, exc.errors))
        return self.finish(response)

    def refuse(self, message: str, status: int = 400) -> Response:
        """The answer to a body HTTP could not read (bad chunking, too large); the connection
        is closed after it."""
        return self.finish(Response(status, self.framing_error(message), {"Connection": "close"}))

    def finish(self, response: Response) -> Response:
        """Encode the payload and complete the headers, in the order they are sent."""
        if response.drop:
            return response
        headers = {**self.first_headers(response), **response.headers}
        if response.status == 204 or response.status < 200:
            if self.length_on_empty:
                headers["Content-Length"] = "0"
            response.headers, response.content = headers, b""
            return response
        content = json.dumps(
            response.payload, separators=(",", ":"), ensure_ascii=self.ensure_ascii
        ).encode("utf-8")
        headers["Content-Type"] = self.json_type
        headers["Content-Length"] = str(len(content))
        response.headers, response.content = headers, content
        return response

    # --- hooks --------------------------------------------------------------------------------

    @abstractmethod
    def handle_api(self, request: Request) -> Response:
        """Each fake's own API."""

    @abstractmethod
    def control_extra(self, request: Request, route: str) -> Response:
        """Each fake's own /_control routes."""

    def framing_error(self, message: str) -> Any:
        """The body answering an unreadable request body."""
        return validation_body(message, [{"field": "body", "message": message}])

    def first_headers(self, response: Response) -> dict[str, str]:
        """Headers sent before the response's own."""
        return {}

    # --- the control API ----------------------------------------------------------------------

    def _control(self, request: Request, route: str) -> Response:
        state, method, query = self.state, request.method, request.query
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
            return state.add_faults(control_json(request.raw))
        if route == "log":
            since = query_int(query, "since", 0)
            limit = query_int(query, "limit", None)
            return Response(200, state.log_since(since or 0, limit))
        if route == "stats":
            return Response(200, state.stats())
        if route == "reset":
            return Response(200, state.reset())
        return self.control_extra(request, route)
