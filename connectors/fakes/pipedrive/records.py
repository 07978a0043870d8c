"""The fake Pipedrive's record operations: add, update, read and search persons and
organizations, stored and answered in API v2's shapes (the 200 answers of the OpenAPI
document in ``spec/``)."""

from __future__ import annotations

import base64
from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.pipedrive import texts
from connectors.fakes.pipedrive.spec import Operation
from connectors.fakes.pipedrive.state import State, stamp

MAX_SEARCH_LIMIT = 500  # the v2 document: limit up to 500
LISTS = ("emails", "phones", "im")


class Refused(Exception):
    """An answer given instead of the operation (a 400 for the request's shape, say);
    `violation`: what made the request one Pipedrive would refuse for its shape."""

    def __init__(self, response: Response, violation: str | None = None) -> None:
        super().__init__(violation or "")
        self.response = response
        self.violation = violation


class Records:
    def __init__(self, state: State) -> None:
        self.state = state

    def operate(
        self, operation: Operation, obj: str, record_id: str | None, req: Request, body: Any
    ) -> Response:
        """Under the state's lock, after the request's checks."""
        method = operation.key.split(" ", 1)[0]
        if operation.key.endswith("/search"):
            return self.search(obj, req)
        if record_id is None:
            return Response(200, {"success": True, "data": self.add(obj, body)})
        record = self.state.records[obj].get(int(record_id)) if record_id.isdigit() else None
        if record is None:
            return Response(404, texts.not_found(obj))
        if method == "GET":
            return Response(200, {"success": True, "data": dict(record)})
        return Response(200, {"success": True, "data": self.change(obj, record, body)})

    # --- writes -------------------------------------------------------------------------------

    def _refuse(self, body: Json) -> None:
        raise Refused(Response(400, body))

    def _check_values(self, obj: str, values: Json, creating: bool) -> None:
        if creating and not str(values.get("name") or "").strip():
            self._refuse(texts.name_required())
        for listed in LISTS:
            items = values.get(listed) or []
            if sum(1 for item in items if item.get("primary")) > 1:
                # [unconfirmed] the fake's reading: one primary entry per list
                self._refuse(texts.validation(listed, "only one item can be primary"))
        org_id = values.get("org_id")
        if (
            obj == "persons"
            and org_id is not None
            and org_id not in self.state.records["organizations"]
        ):
            # [unconfirmed] message; a link to no organization is refused
            self._refuse(texts.validation("org_id", f"Organization {org_id} not found"))

    def add(self, obj: str, values: Json) -> Json:
        """A record as POST /api/v2/{object} stores it (also a rep's, through /_control)."""
        state = self.state
        self._check_values(obj, values, creating=True)
        now = stamp()
        record: Json = {
            "id": state.new_id(),
            "owner_id": 1,
            "add_time": now,
            "update_time": now,
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "custom_fields": {},
        }
        if obj == "persons":
            record |= {"org_id": None, "emails": [], "phones": [], "picture_id": None}
        else:
            record |= {"address": None}
        record = self._merged(record, values)
        record["add_time"] = values.get("add_time") or now
        state.records[obj][record["id"]] = record
        state.created += 1
        return dict(record)

    def change(self, obj: str, record: Json, values: Json) -> Json:
        self._check_values(obj, {**record, **values}, creating=False)
        record.update(self._merged(record, values))
        record["update_time"] = stamp()
        self.state.updated += 1
        return dict(record)

    @staticmethod
    def _merged(record: Json, values: Json) -> Json:
        """`values` over `record`: lists replaced whole, custom fields by key (null clears)."""
        out = dict(record)
        for name, value in values.items():
            if name == "custom_fields":
                custom = dict(out.get("custom_fields") or {})
                for key, item in (value or {}).items():
                    if item is None:
                        custom.pop(key, None)
                    else:
                        custom[key] = item
                out["custom_fields"] = custom
            elif name in LISTS:
                out[name] = [
                    {
                        "value": i.get("value"),
                        "primary": bool(i.get("primary")),
                        "label": i.get("label", "work"),
                    }
                    for i in value or []
                ]
            else:
                out[name] = value
        if "name" in values and "emails" in out:  # persons: v2 answers first and last name
            first, _, last = str(out.get("name") or "").partition(" ")
            out["first_name"], out["last_name"] = first, last
        return out

    # --- search -------------------------------------------------------------------------------

    def search(self, obj: str, req: Request) -> Response:
        term = (req.param("term") or "").strip()
        exact = req.param("exact_match") == "true"
        if len(term) < (1 if exact else 2):
            raise Refused(
                Response(400, texts.validation("term", "must be at least 2 characters")),
                "term too short",
            )
        where = req.param("fields")
        limit = min(int(req.param("limit") or 100), MAX_SEARCH_LIMIT)
        start = _offset(req.param("cursor"))
        wanted = term.lower()
        hits = []
        for record in self.state.records[obj].values():
            values = [v.lower() for v in _searchable(obj, record, where)]
            if any(v == wanted if exact else wanted in v for v in values):
                hits.append(record)
        page = hits[start : start + limit]
        following = start + limit if start + limit < len(hits) else None
        return Response(
            200,
            {
                "success": True,
                "data": {
                    "items": [
                        {"result_score": 1.0 if exact else 0.5, "item": self._hit(obj, r)}
                        for r in page
                    ]
                },
                "additional_data": {"next_cursor": _cursor(following)},
            },
        )

    def _hit(self, obj: str, record: Json) -> Json:
        """A search item (the v2 document's shape: values as plain strings)."""
        item: Json = {
            "id": record["id"],
            "type": obj.rstrip("s") if obj == "persons" else "organization",
            "name": record.get("name"),
            "visible_to": record.get("visible_to"),
            "owner": {"id": record.get("owner_id")},
            "custom_fields": [str(v) for v in (record.get("custom_fields") or {}).values()],
            "notes": [],
        }
        if obj == "persons":
            org = self.state.records["organizations"].get(record.get("org_id") or 0)
            item |= {
                "emails": [e["value"] for e in record.get("emails") or []],
                "phones": [p["value"] for p in record.get("phones") or []],
                "organization": {"id": org["id"], "name": org["name"]} if org else None,
            }
        else:
            address = record.get("address")
            item["address"] = address.get("value") if isinstance(address, dict) else address
        return item


def _searchable(obj: str, record: Json, where: str | None) -> list[str]:
    fields = [where] if where else (["name", "email", "phone"] if obj == "persons" else ["name"])
    out: list[str] = []
    for field in fields:
        if field == "email":
            out += [str(e.get("value") or "") for e in record.get("emails") or []]
        elif field == "phone":
            out += [str(p.get("value") or "") for p in record.get("phones") or []]
        elif field == "custom_fields":
            out += [str(v) for v in (record.get("custom_fields") or {}).values()]
        elif field == "address":
            address = record.get("address")
            out.append(str(address.get("value") if isinstance(address, dict) else address or ""))
        else:
            out.append(str(record.get(field) or ""))
    return out


def _cursor(offset: int | None) -> str | None:
    return base64.urlsafe_b64encode(str(offset).encode()).decode() if offset is not None else None


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return max(int(base64.urlsafe_b64decode(cursor.encode()).decode()), 0)
    except ValueError:
        return 0
