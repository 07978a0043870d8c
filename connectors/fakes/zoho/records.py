"""The fake Zoho's record operations: upsert, insert, get by ids, get one, search.

Sources: https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html (up to 100
records; ``duplicate_check_fields``, else the module's system-defined unique field; results
in input order; 200 all written, 207 mixed, 400 all refused),
https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html (201 when all are added),
https://www.zoho.com/crm/developer/docs/api/v8/get-records.html (``fields`` required for a
list, ``ids`` at most 100, 204 when nothing is there),
https://www.zoho.com/crm/developer/docs/api/v8/search-records.html (``criteria``
``(Field:operator:value)`` joined by ``and``/``or``, at most 10; ``\\``-escaped ``(`` ``)``
``,`` in values; 204 when nothing matches; 200 per page with ``info.more_records``).
The fake supports the ``equals`` and ``starts_with`` operators and one level of ``or``/``and``.
"""

from __future__ import annotations

from typing import Any

from connectors.fakes.app import Json, Request, Response
from connectors.fakes.zoho import texts
from connectors.fakes.zoho.layout import Module, check_values
from connectors.fakes.zoho.listing import sorted_page
from connectors.fakes.zoho.state import State, key_of
from connectors.fakes.zoho.texts import ZohoError

WRITE_LIMIT = 100
IDS_LIMIT = 100
MAX_CRITERIA = 10
PER_PAGE = 200


class Records:
    def __init__(self, state: State) -> None:
        self.state = state

    # --- writes -------------------------------------------------------------------------------

    def write(self, module: Module, body: Any, upsert: bool) -> tuple[Response, list[str]]:
        """Upsert or insert every record of ``data``; (the answer, fields the org lacks)."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise texts.required_param("data")
        data = body["data"]
        if not data:
            raise texts.required_param("data")
        if len(data) > WRITE_LIMIT:
            raise texts.record_limit(WRITE_LIMIT)
        checks = [str(f) for f in body.get("duplicate_check_fields") or [module.unique]]
        for name in checks:
            if name not in module.fields:
                raise ZohoError(
                    400,
                    "INVALID_DATA",
                    "invalid data",
                    {"api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields"},
                )
        state = self.state
        results: list[Json] = []
        unknown: list[str] = []
        state.records_sent += len(data)
        for index, values in enumerate(data):
            if not isinstance(values, dict):
                results.append(texts.invalid_data("data", index, expected_data_type="jsonobject"))
                continue
            found, field = self._duplicate(module, checks, values) if upsert else (None, None)
            current = state.records[module.name].get(found) if found else None
            clean, problem, extra = check_values(
                module, values, index, current is None, current, self._exists
            )
            unknown += [f"{module.name}.{name}" for name in extra]
            if problem is not None:
                results.append(problem)
            elif found is not None:
                record = state.update(module, found, clean)
                results.append(texts.success("update", record, field, state.user()))
            else:
                record = state.insert(module, clean)
                results.append(texts.success("insert", record, None, state.user()))
        failed = sum(r["status"] == "error" for r in results)
        status = 400 if failed == len(results) else 207 if failed else (200 if upsert else 201)
        return Response(status, {"data": results}), [
            f"a field the org does not have: {name}" for name in dict.fromkeys(unknown)
        ]

    def _duplicate(
        self, module: Module, checks: list[str], values: Json
    ) -> tuple[str | None, str | None]:
        """The stored record the duplicate check finds (the oldest of several), and on what."""
        for name in checks:
            if values.get(name) is None or not str(values[name]).strip():
                continue
            found = self.state.find(module, name, values[name])
            if found:
                return found[0], name
        return None, None

    def _exists(self, module: str, record_id: str) -> bool:
        return record_id in self.state.records.get(module, {})

    # --- reads --------------------------------------------------------------------------------

    def get_list(self, module: Module, req: Request) -> Response:
        fields = req.param_list("fields")
        if not fields:
            raise texts.required_param("fields")
        ids = req.param_list("ids") or []
        if len(ids) > IDS_LIMIT:
            raise texts.record_limit(IDS_LIMIT)
        table = self.state.records[module.name]
        if ids:
            return self._page(
                module, [table[i] for i in dict.fromkeys(ids) if i in table], fields, req
            )
        listed = sorted_page(list(table.values()), req)  # the list: listing.py
        if isinstance(listed, Response):
            return listed
        rows, info = listed
        return Response(200, {"data": [self._shown(module, r, fields) for r in rows], "info": info})

    def get_one(self, module: Module, record_id: str, req: Request) -> Response:
        record = self.state.records[module.name].get(record_id)
        if record is None:
            return Response(204)  # [unconfirmed] a deleted record's GET answers no content
        fields = req.param_list("fields")
        return Response(200, {"data": [self._shown(module, record, fields)]})

    def search(self, module: Module, req: Request) -> Response:
        criteria = req.param("criteria")
        email = req.param("email")
        if criteria is None and email is None:
            raise texts.required_param("criteria")
        if criteria is not None:
            joiner, terms = parse_criteria(criteria)
        else:
            joiner, terms = "or", [("Email", "equals", str(email))]
        for name, _, _ in terms:
            if name not in module.fields and name != "id":
                raise texts.invalid_query(f"invalid field {name} in criteria")
        table = self.state.records[module.name].values()
        tests = [(name, op, key_of(value)) for name, op, value in terms]

        def hit(record: Json, name: str, op: str, value: str) -> bool:
            have = key_of(record.get(name))
            return have == value if op == "equals" else have.startswith(value)

        combine = any if joiner == "or" else all
        rows = [r for r in table if combine(hit(r, *t) for t in tests)]
        return self._page(module, rows, req.param_list("fields"), req)

    def _page(
        self, module: Module, rows: list[Json], fields: list[str] | None, req: Request
    ) -> Response:
        if not rows:
            return Response(204)
        page = int(req.param("page") or 1)
        per_page = min(int(req.param("per_page") or PER_PAGE), PER_PAGE)
        start = (page - 1) * per_page
        shown = [self._shown(module, r, fields) for r in rows[start : start + per_page]]
        if not shown:
            return Response(204)
        info = {
            "per_page": per_page,
            "count": len(shown),
            "page": page,
            "more_records": start + per_page < len(rows),
        }
        return Response(200, {"data": shown, "info": info})

    def _shown(self, module: Module, record: Json, fields: list[str] | None) -> Json:
        full = self.state.shown(module, record)
        if not fields:
            return full
        return {k: full.get(k) for k in dict.fromkeys(["id", *fields])}


def parse_criteria(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """("or" | "and", [(field, operator, value)]) of ``(A:equals:x)or(B:equals:y)``, with or
    without one pair of parentheses around the whole; values unescaped."""
    body = text.strip()
    if body.startswith("((") and body.endswith("))"):
        body = body[1:-1]
    terms: list[tuple[str, str, str]] = []
    joiners: set[str] = set()
    i = 0
    while i < len(body):
        if body[i] != "(":
            raise texts.invalid_query(f"criteria: expected '(' at {i}")
        j, raw = i + 1, []
        while j < len(body) and body[j] != ")":
            if body[j] == "\\" and j + 1 < len(body):
                raw.append(body[j : j + 2])
                j += 2
            else:
                raw.append(body[j])
                j += 1
        if j >= len(body):
            raise texts.invalid_query("criteria: a '(' is never closed")
        parts = "".join(raw).split(":", 2)
        if len(parts) != 3 or parts[1] not in ("equals", "starts_with"):
            raise texts.invalid_query(f"criteria: cannot read ({''.join(raw)})")
        value = parts[2]
        unescaped, k = [], 0
        while k < len(value):
            if value[k] == "\\" and k + 1 < len(value):
                k += 1
            unescaped.append(value[k])
            k += 1
        terms.append((parts[0], parts[1], "".join(unescaped)))
        i = j + 1
        for word in ("or", "and"):
            if body.startswith(word + "(", i):
                joiners.add(word)
                i += len(word)
                break
    if not terms or len(joiners) > 1:
        raise texts.invalid_query("criteria: mix of and/or without grouping")
    if len(terms) > MAX_CRITERIA:
        raise texts.invalid_query(f"criteria: more than {MAX_CRITERIA} criteria")
    return (joiners.pop() if joiners else "or"), terms
