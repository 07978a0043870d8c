"""HubSpot CRM (v3 objects API): contacts, companies, any object with a unique property.

Writes are upserts on the mapping's match key through the batch upsert endpoint
(`POST /crm/v3/objects/{object}/batch/upsert` with `idProperty`), one record or up to 100 at
once, so HubSpot itself finds-or-creates and a blind create never happens. `action:
create_only` uses `POST /crm/v3/objects/{object}`; its 409 "Contact already exists. Existing
ID: N" is resolved by updating N, never by creating another.

Errors are translated here, once (https://developers.hubspot.com/docs/api/error-handling,
https://developers.hubspot.com/docs/api/usage-details):
  400 VALIDATION_ERROR           -> DataError carrying HubSpot's per-property detail
  401 (EXPIRED_AUTHENTICATION,   -> one token refresh and one more try (OAuth2): HubSpot
       INVALID_AUTHENTICATION)      answers INVALID_AUTHENTICATION for a token it no longer
                                    knows, which a new token fixes as well
  401 again after the refresh,   -> AuthError: the connection pauses
  403, or 401 without OAuth2
  429 TEN_SECONDLY_ROLLING       -> RateLimited for the window in X-HubSpot-RateLimit-*
  429 DAILY                      -> RateLimited until the daily reset (midnight, account zone)
  5xx, timeouts                  -> TransientError
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from connectors.base import Connector, WriteResult, default_classify, excerpt
from core.changes import ChangePage, Listed, Stamp
from core.config.polling import PollSpec
from core.errors import DataError, HubError, RateLimited, TransientError
from core.mapping import MappedRecord
from core.mapping.empty import is_empty
from core.vocabulary import DeadCategory

API = "https://api.hubapi.com"
TOKEN_URL = "https://api.hubapi.com/oauth/v1/token"
BATCH_LIMIT = 100  # HubSpot's batch endpoints take at most 100 inputs
#: the CRM search API answers at most 200 records a request and 10,000 per query
SEARCH_PAGE_LIMIT, SEARCH_RESULT_LIMIT = 200, 10_000
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str:
    """HubSpot property values are strings on the wire."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def property_problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-property detail from a VALIDATION_ERROR, in either of HubSpot's shapes: an
    `errors` list with `context.propertyName`, or the JSON list embedded in `message`
    ("Property values were not valid: [{...}]")."""
    problems: list[dict[str, Any]] = []
    for err in body.get("errors") or []:
        names = (err.get("context") or {}).get("propertyName") or [None]
        for name in names:
            problems.append({"field": name, "problem": err.get("message"), "code": err.get("code")})
    message = str(body.get("message") or "")
    # the message form names the properties; prefer it when the errors list names none
    if not any(p["field"] for p in problems) and "[" in message:
        try:
            listed = json.loads(message[message.index("[") :])
        except ValueError:
            listed = []
        named = [
            {"field": item.get("name"), "problem": item.get("message"), "code": item.get("error")}
            for item in (listed if isinstance(listed, list) else [])
            if isinstance(item, dict)
        ]
        problems = named or problems
    return problems


class HubSpotConnector(Connector):
    name = "hubspot"
    default_token_url = TOKEN_URL
    max_batch = BATCH_LIMIT
    lists_changes = True
    max_list_page = SEARCH_PAGE_LIMIT

    # errors ---------------------------------------------------------------------------
    def classify(self, response: httpx.Response) -> None:
        status = response.status_code
        body = _body(response)
        if status == 429:
            raise RateLimited(
                f"HubSpot rate limit ({body.get('policyName', 'unknown policy')})",
                status=429,
                retry_after=self._rate_wait(response, body),
                excerpt=excerpt(response),
            )
        if status == 400 and body.get("category") == "VALIDATION_ERROR":
            problems = property_problems(body)
            raise DataError(
                f"HubSpot rejected the record: {body.get('message', '')[:300]}",
                category=DeadCategory.REJECTED_BY_TARGET,
                problems=problems,
                status=400,
                excerpt=excerpt(response),
            )
        default_classify(response)

    def _rate_wait(self, response: httpx.Response, body: dict[str, Any]) -> float:
        retry_after = response.headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            return float(retry_after)
        if body.get("policyName") == "DAILY":
            zone = ZoneInfo(str(self.connection.options.get("account_timezone", "UTC")))
            now = datetime.now(zone)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            # real seconds (aware datetimes in one zone subtract as wall-clock times, an hour
            # off on the nights the clocks change)
            return midnight.timestamp() - now.timestamp()
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return int(interval) / 1000 if interval and interval.isdigit() else 10.0

    # reads ----------------------------------------------------------------------------
    def list_changes(
        self, poll: PollSpec, since: Stamp, cursor: str | None, until: Stamp | None = None
    ) -> ChangePage:
        """The CRM search API (`POST /crm/v3/objects/{object}/search`): the stamp property
        (`hs_lastmodifieddate`; contacts also have `lastmodifieddate`) GTE `since` in epoch ms,
        sorted ascending, `after` paging. A search answers at most 10,000 results per query:
        the poller starts a new query from the newest stamp of every page (core/polling.py),
        so `after` only pages within one millisecond's records and never reaches it.
        https://developers.hubspot.com/docs/api/crm/search"""
        stamp = poll.cursor
        filters: list[dict[str, Any]] = [
            {"propertyName": stamp, "operator": "GTE", "value": str(since.ms)}
        ]
        if until is not None:
            filters.append({"propertyName": stamp, "operator": "LTE", "value": str(until.ms)})
        request: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": stamp, "direction": "ASCENDING"}],
            "properties": sorted({*poll.fields, stamp}),
            "limit": min(poll.page_size, SEARCH_PAGE_LIMIT),
        }
        if cursor:
            request["after"] = cursor
        body = _body(self.request("POST", f"/crm/v3/objects/{poll.object}/search", json=request))
        listed = []
        for result in body.get("results") or []:
            props = result.get("properties") or {}
            ident = props.get(poll.id_field) if poll.id_field else result.get("id")
            listed.append(Listed(str(ident), str(props.get(stamp) or ""), result))
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        return ChangePage(listed, str(after) if after else None)

    def read(self, record: MappedRecord) -> dict[str, Any] | None:
        found = self._read_many(
            record.object, record.match_field or "", [record], list(record.target_owned)
        )
        return found.get(_key(record.match_value))

    def _read_many(
        self, obj: str, id_property: str, records: Sequence[MappedRecord], properties: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Current properties of the records that exist, by normalised match value."""
        response = self.request(
            "POST",
            f"/crm/v3/objects/{obj}/batch/read",
            ok=(207,),
            json={
                "idProperty": id_property,
                "properties": sorted({*properties, id_property}),
                "inputs": [{"id": r.match_value} for r in records],
            },
        )
        found: dict[str, dict[str, Any]] = {}
        for result in _body(response).get("results") or []:
            props = result.get("properties") or {}
            found[_key(props.get(id_property))] = {**props, "hs_object_id": result.get("id")}
        return found

    # writes ---------------------------------------------------------------------------
    def write(
        self, record: MappedRecord, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> WriteResult:
        if record.action == "create_only":
            return self._create(record, fields)
        (outcome,) = self._upsert(record.object, [(record, fields)])
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    def fetch(self, obj: str, record_id: str, properties: Sequence[str]) -> dict[str, Any]:
        """`GET /crm/v3/objects/{object}/{id}`: {"id", "properties": {...}, ...}."""
        (found,) = self.fetch_many(obj, [record_id], properties).values()
        if isinstance(found, HubError):
            raise found
        return found

    def fetch_requests(self, count: int) -> int:
        return -(-count // BATCH_LIMIT)

    def fetch_many(
        self, obj: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any] | HubError]:
        """One request per 100 records: `POST /crm/v3/objects/{object}/batch/read` (207 when
        some are missing: those are dead letters `source_record_missing`)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any] | HubError] = {}
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            response = self.request(
                "POST",
                f"/crm/v3/objects/{obj}/batch/read",
                ok=(207,),
                json={
                    "properties": list(properties),
                    "propertiesWithHistory": [],
                    "inputs": [{"id": i} for i in chunk],
                },
            )
            for result in _body(response).get("results") or []:
                found[str(result.get("id"))] = result
        for record_id in wanted:
            if record_id not in found:
                found[record_id] = DataError(
                    f"HubSpot has no {obj} record {record_id} (deleted or merged?)",
                    category=DeadCategory.SOURCE_RECORD_MISSING,
                    status=404,
                )
        return found

    def deliver_batch(self, records: Sequence[MappedRecord]) -> list[WriteResult | HubError]:
        """Up to 100 upserts in one request; HubSpot's per-record results mapped back."""
        if len(records) > BATCH_LIMIT:
            outcomes: list[WriteResult | HubError] = []
            for start in range(0, len(records), BATCH_LIMIT):
                chunk = records[start : start + BATCH_LIMIT]
                try:
                    outcomes += self.deliver_batch(chunk)
                except HubError as exc:  # a chunk's failure is not the others'
                    outcomes += [exc] * len(chunk)
            return outcomes
        if (
            any(r.action != "upsert" for r in records)
            or len({r.object for r in records}) > 1
            or len({r.match_field for r in records}) > 1
            # one record twice (deliveries whose order is kept on another key, as a fetch:
            # mapping's on the fetched record's id): HubSpot refuses a batch naming an id twice
            # ("Duplicate IDs found in batch input"), so they go one at a time, in order
            or len({_key(r.match_value) for r in records}) < len(records)
        ):
            return super().deliver_batch(records)
        owned = sorted({name for r in records for name in r.target_owned})
        existing = (
            self._read_many(records[0].object, records[0].match_field or "", records, owned)
            if owned
            else {}
        )
        plans = []
        for record in records:
            current = existing.get(_key(record.match_value))
            skipped = tuple(
                name
                for name in record.target_owned
                if current is not None and not is_empty(current.get(name))
            )
            plans.append(
                (record, {k: v for k, v in record.values().items() if k not in skipped}, skipped)
            )
        try:
            outcomes = self._upsert(records[0].object, [(r, f) for r, f, _ in plans])
        except DataError:
            if len(records) == 1:
                raise
            # HubSpot fails a whole batch for one invalid record: isolate it, write the rest
            return super().deliver_batch(records)
        return [
            outcome
            if isinstance(outcome, HubError)
            else WriteResult(
                outcome.operation,
                outcome.status,
                outcome.record_id,
                outcome.excerpt,
                skipped_fields=skipped,
                written_fields=tuple(fields),
            )
            for outcome, (_, fields, skipped) in zip(outcomes, plans, strict=True)
        ]

    def _upsert(
        self, obj: str, items: Sequence[tuple[MappedRecord, dict[str, Any]]]
    ) -> list[WriteResult | HubError]:
        id_property = items[0][0].match_field or ""
        inputs = [
            {
                "idProperty": id_property,
                "id": record.match_value,
                "objectWriteTraceId": f"t{index}",
                "properties": {k: _text(v) for k, v in fields.items()},
            }
            for index, (record, fields) in enumerate(items)
        ]
        response = self.request(
            "POST", f"/crm/v3/objects/{obj}/batch/upsert", ok=(207,), json={"inputs": inputs}
        )
        body = _body(response)
        by_key: dict[str, dict[str, Any]] = {}
        for result in body.get("results") or []:
            by_key[_key((result.get("properties") or {}).get(id_property))] = result
            trace = result.get("objectWriteTraceId")
            if trace:
                by_key[f"trace:{trace}"] = result
        failed: dict[str, dict[str, Any]] = {}
        for err in body.get("errors") or []:
            for values in (err.get("context") or {}).values():
                for value in values if isinstance(values, list) else [values]:
                    failed[_key(value)] = err
                    failed[f"trace:{value}"] = err
        outcomes: list[WriteResult | HubError] = []
        for index, (record, _) in enumerate(items):
            key, trace = _key(record.match_value), f"trace:t{index}"
            result = by_key.get(trace) or by_key.get(key)
            if result is not None:
                outcomes.append(
                    WriteResult(
                        "created" if result.get("new") else "updated",
                        response.status_code,
                        str(result.get("id")),
                        json.dumps(result)[:300],
                    )
                )
            elif (err := failed.get(trace) or failed.get(key)) is not None:
                outcomes.append(_record_error(err))
            else:
                outcomes.append(
                    TransientError(
                        "HubSpot's batch answer did not mention this record; trying again",
                        status=response.status_code,
                        excerpt=excerpt(response),
                    )
                )
        return outcomes

    def _create(self, record: MappedRecord, fields: dict[str, Any]) -> WriteResult:
        properties = {k: _text(v) for k, v in fields.items()}
        if (
            record.match_field
            and record.match_value is not None
            and record.match_field not in record.values()
        ):
            # the unique match property is what lets HubSpot answer 409 instead of creating
            # a second record (the upsert sends it as idProperty/id)
            properties[record.match_field] = _text(record.match_value)
        response = self.request(
            "POST", f"/crm/v3/objects/{record.object}", ok=(409,), json={"properties": properties}
        )
        if response.status_code != 409:
            return WriteResult(
                "created", response.status_code, str(_body(response).get("id")), excerpt(response)
            )
        match = _EXISTING_ID.search(str(_body(response).get("message", "")))
        if not match:
            raise DataError(
                "HubSpot reports a conflict without the existing record's id",
                category=DeadCategory.REJECTED_BY_TARGET,
                status=409,
                excerpt=excerpt(response),
            )
        existing_id = match.group(1)
        updated = self.request(
            "PATCH",
            f"/crm/v3/objects/{record.object}/{existing_id}",
            json={"properties": properties},
        )
        return WriteResult("updated", updated.status_code, existing_id, excerpt(updated))


def _key(value: Any) -> str:
    """Match values compare as HubSpot does for emails and unique values: trimmed, no case."""
    return str(value or "").strip().lower()


def _record_error(err: dict[str, Any]) -> HubError:
    category = str(err.get("category") or "")
    message = f"HubSpot: {err.get('message') or category or 'record failed'}"
    raw_status = str(err.get("status", ""))
    status = int(raw_status) if raw_status.isdigit() else None
    if category in ("VALIDATION_ERROR", "CONFLICT", "OBJECT_NOT_FOUND", "INVALID_EMAIL"):
        return DataError(
            message,
            category=DeadCategory.REJECTED_BY_TARGET,
            status=status,
            problems=property_problems(err),
            excerpt=json.dumps(err)[:500],
        )
    if category == "RATE_LIMITS":
        return RateLimited(message, status=429)
    return TransientError(message, status=status, excerpt=json.dumps(err)[:500])
