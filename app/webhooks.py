"""POST /webhooks/<source>: verify, dedupe, store durably, enqueue; answer only then.

The receiver is thin: the parsing and routing are core.intake, the atomic accept-and-publish
is core.ledger. A 2xx is never sent for an event the ledger has not accepted.

It is mounted as WSGI middleware in front of the Flask app (which serves everything else):
for the one hot endpoint, Flask's request/response machinery costs about as much CPU as the
verification and the Redis write together (measured: the same endpoint answers 8,200 req/s in
Flask and 16,500 as plain WSGI on 2 cores), and the hub's receiver must keep up with bursts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, cast

from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_current_url

from app.runtime import Hub
from core.errors import LedgerUnavailable, ReplicasUnconfirmed
from core.intake import BadPayload, build_events, decode_body, stored_headers
from core.reload import Reloadable
from core.signatures import SignatureError, SignedRequest
from core.vocabulary import WebhookOutcome

log = logging.getLogger("crmhub.receiver")

PREFIX = "/webhooks/"
#: seconds a sender should wait before retrying when the ledger is unavailable
LEDGER_RETRY_AFTER = 5

Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]
StartResponse = Callable[..., Any]


def _error(status: int, code: str, detail: str, **extra: Any) -> Answer:
    return status, {"error": code, "detail": detail, **extra}, []


def receive(hub: Hub, source: str, environ: dict[str, Any]) -> Answer:
    """One webhook request, from the WSGI environ to (status, JSON body, extra headers)."""
    receiver = hub.receivers.get(source)
    if receiver is None:
        return _error(404, "unknown_source", f"no source named {source!r} is configured")

    limit = receiver.max_body_bytes
    raw_length = environ.get("CONTENT_LENGTH")
    length = int(raw_length) if raw_length and raw_length.isdigit() else None
    if length is not None and length > limit:
        hub.answers.outcome(source, WebhookOutcome.TOO_LARGE)
        return _error(
            413,
            "payload_too_large",
            f"body is {length} bytes; the limit for source {source!r} is {limit}",
        )
    # chunked bodies have no Content-Length: read one byte past the limit to notice
    body = environ["wsgi.input"].read(min(length, limit + 1) if length is not None else limit + 1)
    if len(body) > limit:
        hub.answers.outcome(source, WebhookOutcome.TOO_LARGE)
        return _error(
            413,
            "payload_too_large",
            f"body exceeds the limit of {limit} bytes for source {source!r}",
        )

    now = time.time()
    # case-insensitive get() and items(), which is all the schemes use
    headers = cast(Mapping[str, str], EnvironHeaders(environ))
    url = (
        receiver.signed_url(get_current_url(environ), environ.get("QUERY_STRING", ""))
        if receiver.scheme.signs_url
        else ""
    )  # building it costs; most never sign it
    signed = SignedRequest(method="POST", url=url, headers=headers, body=body)
    try:
        receiver.verify(signed, now)
    except SignatureError as exc:
        log.warning(
            "rejected webhook for %s: signature %s: %s",
            source,
            exc.reason,
            exc.detail,
            extra={"source": source},
        )
        hub.answers.outcome(source, WebhookOutcome.UNAUTHORIZED)
        return _error(401, f"signature_{exc.reason}", exc.detail, reason=exc.reason)

    try:
        text, parsed = decode_body(body)
        events = build_events(
            receiver.source,
            receiver.mappings,
            headers,
            stored_headers(headers.items(), receiver.redacted_headers),
            text,
            parsed,
            now,
        )
    except BadPayload as exc:
        hub.answers.outcome(source, WebhookOutcome.MALFORMED)
        return _error(400, "malformed", exc.detail)

    try:
        results = hub.acceptor.accept(events, now)
    except LedgerUnavailable as exc:
        log.error(
            "ledger unavailable; answering 503 to %s: %s", source, exc, extra={"source": source}
        )
        hub.answers.outcome(source, WebhookOutcome.UNAVAILABLE)
        status, payload, _ = (
            _error(
                503,
                "replicas_unconfirmed",
                "recorded, but not yet on enough Redis replicas (CRMHUB_REDIS_WAIT_REPLICAS); "
                "retry later (the retry is recognised as the same event)",
            )
            if isinstance(exc, ReplicasUnconfirmed)
            else _error(
                503,
                "ledger_unavailable",
                "the hub cannot record events right now; retry later (nothing was recorded)",
            )
        )
        return status, payload, [("Retry-After", str(LEDGER_RETRY_AFTER))]

    if not (receiver.source.batch or receiver.source.split):  # one event: its own answer
        result = results[0]
        return (200 if result.duplicate else 202), result.as_json(), []
    fresh = [r for r in results if not r.duplicate]
    return (
        (202 if fresh else 200),
        {
            "events": [r.as_json() for r in results],
            "accepted": len(fresh),
            "duplicates": len(results) - len(fresh),
            "deliveries": sum(r.deliveries for r in fresh),
        },
        [],
    )


def internal_error() -> Answer:
    """The answer to a bug: JSON like every other answer (a sender retries a 5xx, which is
    right: nothing was recorded), never gunicorn's HTML page."""
    return _error(
        500,
        "internal_error",
        "the hub failed to handle this request; nothing was "
        "recorded. Retry later; the hub's log has the details",
    )


class WebhookReceiver:
    """WSGI middleware: `POST /webhooks/<source>` here, everything else to the Flask app.
    Every answer, from either, is counted for /metrics (app/answer_counts.py)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], live: Reloadable[Hub]) -> None:
        self.app = app
        self.live = live  # the hub as the current configuration builds it

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        source = path[len(PREFIX) :]
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(PREFIX)
            or not source
            or "/" in source
        ):
            return self._other(path, environ, start_response)
        hub = self.live.current()
        try:
            status, payload, extra = receive(hub, source, environ)
        except Exception:
            log.exception("unhandled error receiving a webhook for %r", source)
            if source in hub.receivers:
                hub.answers.outcome(source, WebhookOutcome.INTERNAL_ERROR)
            status, payload, extra = internal_error()
        hub.answers.answer(path, status)
        return self._send(start_response, status, payload, extra)

    def _other(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """The Flask app (health, metrics), counting its answer as it starts."""
        answers = self.live.current().answers

        def counted(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answers.answer(path, int(status[:3]) if status[:3].isdigit() else 0)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, counted)
        except Exception:  # Flask answers its own errors; this is a backstop
            log.exception("unhandled error answering %s", path)
            answers.answer(path, 500)
            status, payload, extra = internal_error()
            return self._send(start_response, status, payload, extra)

    @staticmethod
    def _send(
        start_response: StartResponse,
        status: int,
        payload: dict[str, Any],
        extra: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra],
        )
        return [body]
