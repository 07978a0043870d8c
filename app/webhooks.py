"""POST /webhooks/<source>: verify, dedupe, record durably, enqueue; answer only then.

The view is thin: the parsing and routing are core.intake, the atomic record-and-publish is
core.ledger. A 2xx is never sent for an event that is not recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request

from app.metrics import count_rejection
from app.runtime import Hub
from core.errors import LedgerUnavailable
from core.intake import BadPayload, build_events, decode_body, stored_headers
from core.signatures import SignatureError, SignedRequest

log = logging.getLogger("crmhub.receiver")
bp = Blueprint("webhooks", __name__)

#: seconds a sender should wait before retrying when the ledger is unavailable
LEDGER_RETRY_AFTER = 5


def _error(status: int, code: str, detail: str, **extra: Any) -> Response:
    response = jsonify({"error": code, "detail": detail, **extra})
    response.status_code = status
    return response


@bp.post("/webhooks/<source>")
def receive(source: str) -> Response | tuple[Response, int]:
    hub: Hub = current_app.extensions["crmhub"]
    receiver = hub.receivers.get(source)
    if receiver is None:
        return _error(404, "unknown_source", f"no source named {source!r} is configured")

    limit = receiver.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        count_rejection(hub, source, "too_large")
        return _error(413, "payload_too_large", f"body is {request.content_length} bytes; "
                      f"the limit for source {source!r} is {limit}")
    body = request.stream.read(limit + 1)     # chunked bodies have no Content-Length
    if len(body) > limit:
        count_rejection(hub, source, "too_large")
        return _error(413, "payload_too_large",
                      f"body exceeds the limit of {limit} bytes for source {source!r}")

    now = time.time()
    # werkzeug's Headers: case-insensitive get() and items(), which is all the schemes use
    headers = cast(Mapping[str, str], request.headers)
    url = receiver.signed_url(request.url, request.query_string.decode("latin-1")) \
        if receiver.scheme.signs_url else ""           # building it costs; most never sign it
    signed = SignedRequest(method=request.method, url=url, headers=headers, body=body)
    try:
        receiver.verify(signed, now)
    except SignatureError as exc:
        log.warning("rejected webhook for %s: signature %s: %s", source, exc.reason, exc.detail)
        count_rejection(hub, source, "unauthorized")
        return _error(401, f"signature_{exc.reason}", exc.detail, reason=exc.reason)

    try:
        text, parsed = decode_body(body)
        events = build_events(receiver.source, receiver.mappings, headers,
                              stored_headers(request.headers.items(), receiver.redacted_headers),
                              text, parsed, now)
    except BadPayload as exc:
        count_rejection(hub, source, "malformed")
        return _error(400, "malformed", exc.detail)

    try:
        results = hub.recorder.record(events, now)
    except LedgerUnavailable as exc:
        log.error("ledger unavailable; answering 503 to %s: %s", source, exc)
        response = _error(503, "ledger_unavailable", "the hub cannot record events right now; "
                          "retry later (nothing was recorded)")
        response.headers["Retry-After"] = str(LEDGER_RETRY_AFTER)
        return response

    if not receiver.source.batch:
        result = results[0]
        return jsonify(result.as_json()), (200 if result.duplicate else 202)
    fresh = [r for r in results if not r.duplicate]
    payload = {
        "events": [r.as_json() for r in results],
        "accepted": len(fresh),
        "duplicates": len(results) - len(fresh),
        "deliveries": sum(r.deliveries for r in fresh),
    }
    return jsonify(payload), (202 if fresh else 200)
