"""/api/v1's actions on dead letters: replay and discard (by ids or by filter, a dry run
first, in the background past 500) and edit-and-replay. Routes of app/api/views.py's
blueprint."""

from __future__ import annotations

import re
import time

from flask import Response, jsonify, request

from app.api import params
from app.api.views import bp, hub, json_body, operator, runner
from core import dead_letters, edit_replay
from core.errors import OperatorRequestError
from core.vocabulary import OperatorAction

MAX_IDS = 10_000
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def _bulk(action: OperatorAction) -> tuple[Response, int]:
    h = hub()
    body = json_body()
    ids, given_filter = body.get("ids"), body.get("filter")
    if (ids is None) == (given_filter is None):
        raise params.bad("body", 'give "ids" (a list) or "filter" (an object), one of them')
    if ids is not None and (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_IDS
        or not all(isinstance(i, str) and 0 < len(i) <= 80 for i in ids)
    ):
        raise params.bad("ids", f"expected a list of 1 to {MAX_IDS} delivery ids")
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        raise params.bad("dry_run", "expected true or false")
    reason = params.text_param(body, "reason", 500) or ""
    if action == OperatorAction.DISCARD and not reason.strip():
        raise params.bad("reason", "a discard needs a reason (it is kept with each delivery)")
    query = params.filter_object(given_filter, h.config) if given_filter is not None else None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise params.bad("Idempotency-Key", "1 to 200 visible ASCII characters")
    rows = dead_letters.chosen(h.ledger, ids, query)
    if dry:
        return jsonify(dead_letters.dry_run(action, rows)), 200
    result = dead_letters.start(
        h.ledger,
        h.config,
        action,
        rows,
        by=operator().name,
        via=operator().via,
        reason=reason,
        query=query,
        idempotency_key=key,
    )
    if result["background"]:
        if not result.get("repeated"):
            runner.run(h, result["id"])
        response = jsonify(
            {"operation": result["id"], "state": result["state"], "total": result["total"]}
        )
        response.headers["Location"] = f"{bp.url_prefix}/operations/{result['id']}"
        return response, 202
    results = result.get("results", {})
    verb = "replayed" if action == OperatorAction.REPLAY else "discarded"
    return (
        jsonify(
            {
                verb: result["applied"],
                "not_done": {i: r for i, r in results.items() if r != "ok"},
                "operation": result["id"],
            }
        ),
        200,
    )


@bp.post("/dead-letters/replay")
def replay() -> tuple[Response, int]:
    return _bulk(OperatorAction.REPLAY)


@bp.post("/dead-letters/discard")
def discard() -> tuple[Response, int]:
    return _bulk(OperatorAction.DISCARD)


@bp.post("/dead-letters/<delivery_id>/edit")
def edit(delivery_id: str) -> Response:
    h = hub()
    body = json_body()
    fields, event_body = body.get("fields"), body.get("event_body")
    if (fields is None) == (event_body is None):
        raise params.bad("body", 'give "fields" (an object) or "event_body" (an object), one')
    if fields is not None and (not isinstance(fields, dict) or not fields):
        raise params.bad("fields", "expected an object of field name -> new value")
    if event_body is not None and not isinstance(event_body, dict):
        raise params.bad("event_body", "expected the whole event body, a JSON object")
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        raise params.bad("dry_run", "expected true or false")
    if dry:
        seen = edit_replay.preview(
            h.ledger, h.config, delivery_id, fields=fields, event_body=event_body
        )
        if seen is None:
            raise _no_delivery(delivery_id)
        return jsonify(
            {
                "would_replay": bool(seen["dry_run"]["ok"]),
                "dry_run": seen["dry_run"],
                "event_body": seen["body"],
            }
        )
    done = edit_replay.edit_and_replay(
        h.ledger,
        h.config,
        delivery_id,
        fields=fields,
        event_body=event_body,
        by=operator().name,
        via=operator().via,
        now=time.time(),
    )
    if done is None:
        raise _no_delivery(delivery_id)
    if done["result"] != "ok":
        raise OperatorRequestError(
            409,
            "not_dead",
            f"delivery {delivery_id} is {done['result']}: only a dead letter can be edited and "
            "replayed (reload it to see where it stands)",
        )
    return jsonify(done)


def _no_delivery(delivery_id: str) -> OperatorRequestError:
    return OperatorRequestError(
        404, "not_found", f"no delivery {delivery_id!r} (ids look like dlv_...)"
    )
