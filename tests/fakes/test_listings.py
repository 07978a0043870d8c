"""The fakes' list endpoints that polling sources page (connectors/fakes/<vendor>/listing.py),
in-process behind FakeTransport, against each vendor's documented shapes: Pipedrive's
`GET /api/v2/persons` (the v2 OpenAPI document's getPersons answer, `additional_data.
next_cursor`), Zoho's get-records (`info`, If-Modified-Since, page / page_token, 204 / 304),
Dataverse's query (`Prefer: odata.maxpagesize`, `@odata.nextLink`). Records share stamps, as
the vendors' to-the-second stamps do."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.fakes.dynamics import FakeDynamics
from connectors.fakes.pipedrive import FakePipedrive
from connectors.fakes.pipedrive.spec import load, problems
from connectors.fakes.transport import FakeTransport
from connectors.fakes.zoho import FakeZoho

T0, T1, T2 = "2025-01-01T10:20:00", "2025-01-01T10:20:01", "2025-01-01T10:20:02"


# Pipedrive ------------------------------------------------------------------------------
def _pipedrive(stamps: list[str]) -> tuple[FakePipedrive, httpx.Client, list[int]]:
    fake = FakePipedrive()
    ids = [fake.add_record("persons", name=f"P{n}") for n in range(len(stamps))]
    for record_id, stamp in zip(ids, stamps, strict=True):
        fake.state.records["persons"][record_id]["update_time"] = f"{stamp}Z"
    client = httpx.Client(
        base_url="https://acme.pipedrive.com",
        transport=FakeTransport(fake),
        headers={"x-api-token": fake.state.config.api_token},
    )
    return fake, client, ids


def test_pipedrive_lists_by_update_time_in_pages_with_a_next_cursor() -> None:
    fake, client, ids = _pipedrive([T1, T0, T1, T1, T2])
    params: dict[str, Any] = {
        "updated_since": f"{T1}Z", "sort_by": "update_time", "sort_direction": "asc", "limit": 2
    }  # fmt: skip
    first = client.get("/api/v2/persons", params=params)
    body = first.json()
    assert first.status_code == 200 and body["success"] is True
    assert problems(load()["GET /persons"].answer, body, strict=False) == []
    # inclusive of updated_since; equal stamps in id order
    assert [r["id"] for r in body["data"]] == [ids[0], ids[2]]
    cursor = body["additional_data"]["next_cursor"]
    # a record edited between pages moves to the end; the others do not shift
    fake.state.records["persons"][ids[0]]["update_time"] = "2025-01-01T10:20:03Z"
    second = client.get("/api/v2/persons", params={**params, "cursor": cursor}).json()
    assert [r["id"] for r in second["data"]] == [ids[3], ids[4]]
    third = client.get(
        "/api/v2/persons", params={**params, "cursor": second["additional_data"]["next_cursor"]}
    ).json()
    assert [r["id"] for r in third["data"]] == [ids[0]]
    assert third["additional_data"]["next_cursor"] is None
    assert fake.violations() == []


def test_pipedrive_updated_until_is_exclusive_and_limit_at_most_500() -> None:
    _, client, ids = _pipedrive([T0, T1, T2])
    body = client.get("/api/v2/persons", params={"updated_until": f"{T2}Z"}).json()
    assert [r["id"] for r in body["data"]] == ids[:2]
    refused = client.get("/api/v2/persons", params={"limit": 501})
    assert refused.status_code == 400 and refused.json()["success"] is False


# Zoho CRM -------------------------------------------------------------------------------
def _zoho(stamps: list[str]) -> tuple[FakeZoho, httpx.Client, list[str]]:
    fake = FakeZoho()
    ids = [fake.add_record("Contacts", Last_Name=f"L{n}") for n in range(len(stamps))]
    for record_id, stamp in zip(ids, stamps, strict=True):
        fake.state.records["Contacts"][record_id]["Modified_Time"] = f"{stamp}+00:00"
    client = httpx.Client(base_url="https://www.zohoapis.com", transport=FakeTransport(fake))
    with fake.state.lock:
        client.headers["Authorization"] = f"Zoho-oauthtoken {fake.state.new_token()}"
    return fake, client, ids


LIST = {"fields": "Last_Name,Modified_Time", "sort_by": "Modified_Time", "sort_order": "asc"}


def test_zoho_lists_modified_after_if_modified_since_sorted_and_paged() -> None:
    fake, client, ids = _zoho([T1, T0, T1, T2])
    headers = {"If-Modified-Since": f"{T0}+00:00"}
    first = client.get("/crm/v8/Contacts", params={**LIST, "per_page": 2}, headers=headers)
    body = first.json()
    assert first.status_code == 200
    # strictly after If-Modified-Since; equal stamps in id order; only the asked fields
    assert [r["id"] for r in body["data"]] == [ids[0], ids[2]]
    assert set(body["data"][0]) == {"id", "Last_Name", "Modified_Time"}
    info = body["info"]
    assert info["more_records"] is True and info["page"] == 1 and info["count"] == 2
    assert info["sort_by"] == "Modified_Time" and info["sort_order"] == "asc"
    second = client.get(
        "/crm/v8/Contacts", params={**LIST, "per_page": 2, "page": 2}, headers=headers
    ).json()
    assert [r["id"] for r in second["data"]] == [ids[3]]
    assert second["info"]["more_records"] is False
    nothing = client.get("/crm/v8/Contacts", params=LIST, headers={"If-Modified-Since": T2 + "Z"})
    assert nothing.status_code == 304
    assert fake.violations() == []


def test_zoho_page_numbers_reach_2000_records_then_page_token() -> None:
    _, client, _ = _zoho([T0] * 3)
    refused = client.get("/crm/v8/Contacts", params={**LIST, "per_page": 200, "page": 11})
    assert refused.status_code == 400
    assert refused.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    page = client.get("/crm/v8/Contacts", params={**LIST, "per_page": 1}).json()
    token = page["info"]["next_page_token"]
    following = client.get(
        "/crm/v8/Contacts", params={**LIST, "per_page": 1, "page_token": token}
    ).json()
    assert following["data"][0]["id"] != page["data"][0]["id"]
    missing = client.get("/crm/v8/Contacts", params={"sort_by": "Modified_Time"})
    assert missing.status_code == 400 and missing.json()["code"] == "REQUIRED_PARAM_MISSING"


# Dynamics 365 ---------------------------------------------------------------------------
def _dynamics(stamps: list[str]) -> tuple[FakeDynamics, httpx.Client, list[str]]:
    fake = FakeDynamics()
    ids = [fake.add_record("contacts", lastname=f"L{n}") for n in range(len(stamps))]
    for row_id, stamp in zip(ids, stamps, strict=True):
        fake.state.rows["contacts"][row_id]["modifiedon"] = f"{stamp}Z"
    client = httpx.Client(base_url=fake.state.config.url, transport=FakeTransport(fake))
    with fake.state.lock:
        client.headers["Authorization"] = f"Bearer {fake.state.new_token()}"
    return fake, client, ids


def test_dataverse_pages_a_modifiedon_query_by_next_link() -> None:
    fake, client, ids = _dynamics([T1, T0, T1, T1, T2])
    params = {
        "$select": "contactid,modifiedon,lastname",
        "$filter": f"modifiedon ge {T1}.000Z and modifiedon le {T2}.000Z",
        "$orderby": "modifiedon asc,contactid asc",
    }
    first = client.get(
        "/api/data/v9.2/contacts", params=params, headers={"Prefer": "odata.maxpagesize=2"}
    )
    body = first.json()
    assert first.status_code == 200
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2"
    expected = [*sorted([ids[0], ids[2], ids[3]]), ids[4]]
    assert [r["contactid"] for r in body["value"]] == expected[:2]
    assert all(set(r) == {"@odata.etag", "contactid", "modifiedon", "lastname"}
               for r in body["value"])  # fmt: skip
    link = body["@odata.nextLink"]
    assert link.startswith(f"{fake.state.config.url}/api/data/v9.2/contacts?")
    assert "$skiptoken=" in link or "%24skiptoken=" in link
    second = client.get(link, headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert [r["contactid"] for r in second["value"]] == expected[2:]
    assert "@odata.nextLink" not in second
    assert fake.violations() == []


def test_dataverse_refuses_a_filter_on_a_column_the_table_lacks() -> None:
    _, client, _ = _dynamics([T0])
    refused = client.get("/api/data/v9.2/contacts", params={"$filter": f"nosuchcolumn ge {T0}Z"})
    assert refused.status_code == 400 and "nosuchcolumn" in refused.json()["error"]["message"]
