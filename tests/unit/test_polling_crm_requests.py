"""The exact listing requests the Pipedrive, Zoho CRM and Dynamics connectors send for a
polling source (connectors/*_changes.py), and how they read the answers, against
httpx.MockTransport: each as its vendor documents the list API (the sources are in those
modules). Failures are classified as a write's are: 401 an AuthError, 429 a RateLimited with
the vendor's wait."""

from __future__ import annotations

from typing import Any

import fakeredis
import httpx
import pytest

from connectors.dynamics import DynamicsConnector
from connectors.pipedrive import PipedriveConnector
from connectors.zoho import ZohoConnector
from core.changes import ChangePage, Stamp
from core.config import ConnectionConfig
from core.config.polling import PollSpec
from core.errors import AuthError, RateLimited
from core.ledger.keys import LedgerKeys
from core.ledger.tokens import TokenStore

SINCE = Stamp.parse("2025-01-01T10:20:00.500Z")
assert SINCE is not None
ENV = {"TOKEN": "pd-token", "ID": "client-id", "SECRET": "client-secret", "REFRESH": "r1"}
ZOHO_API = "https://www.zohoapis.eu"
ORG = "https://org.crm.dynamics.com"


class Vendor:
    """A MockTransport answering the token endpoints, and the listing with `answers` in turn."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(
                200,
                json={"access_token": "at", "expires_in": 3600, "api_domain": ZOHO_API,
                      "token_type": "Bearer"},
            )  # fmt: skip
        self.requests.append(request)
        return self.answers.pop(0)

    def params(self, n: int = 0) -> dict[str, str]:
        return dict(self.requests[n].url.params)


def _build(kind: str, vendor: Vendor) -> Any:
    tokens = TokenStore(fakeredis.FakeRedis(), LedgerKeys("t"))
    oauth = {"client_id_env": "ID", "client_secret_env": "SECRET"}
    if kind == "pipedrive":
        conn = ConnectionConfig(
            name="pd", connector="pipedrive", base_url="https://acme.pipedrive.com",
            auth={"type": "api_token", "token_env": "TOKEN"},
        )  # fmt: skip
        return PipedriveConnector(conn, ENV, transport=httpx.MockTransport(vendor), tokens=tokens)
    if kind == "zoho":
        conn = ConnectionConfig(
            name="zoho", connector="zoho", base_url="https://accounts.zoho.eu",
            accounts_url="https://accounts.zoho.eu",
            auth={"type": "oauth2", "refresh_token_env": "REFRESH", **oauth},
        )  # fmt: skip
        return ZohoConnector(conn, ENV, transport=httpx.MockTransport(vendor), tokens=tokens)
    conn = ConnectionConfig(
        name="dv", connector="dynamics", base_url=ORG,
        auth={"type": "client_credentials", "token_url": f"{ORG}/t/oauth2/v2.0/token", **oauth},
    )  # fmt: skip
    return DynamicsConnector(conn, ENV, transport=httpx.MockTransport(vendor), tokens=tokens)


def _poll(obj: str, cursor: str, fields: tuple[str, ...] = (), size: int = 100) -> PollSpec:
    return PollSpec(connection="c", object=obj, every=5, cursor=cursor, fields=fields,
                    page_size=size)  # fmt: skip


# Pipedrive ------------------------------------------------------------------------------
PD = _poll("persons", "update_time")


def test_pipedrive_lists_by_update_time_from_the_cursors_second() -> None:
    vendor = Vendor(
        httpx.Response(200, json={
            "success": True,
            "data": [
                {"id": 7, "name": "Before", "update_time": "2025-01-01T10:20:00Z"},
                {"id": 8, "name": "Ada", "update_time": "2025-01-01T10:20:01Z"},
            ],
            "additional_data": {"next_cursor": "eyJpZCI6OH0"},
        }),
        httpx.Response(200, json={"success": True, "data": [],
                                  "additional_data": {"next_cursor": None}}),
    )  # fmt: skip
    connector = _build("pipedrive", vendor)
    page = connector.list_changes(PD, SINCE, None)
    request = vendor.requests[0]
    assert request.method == "GET" and request.url.path == "/api/v2/persons"
    assert vendor.params() == {
        "updated_since": "2025-01-01T10:20:00Z",  # floored to the second: inclusive
        "sort_by": "update_time",
        "sort_direction": "asc",
        "limit": "100",
    }
    assert request.headers["x-api-token"] == "pd-token"
    # the row before the cursor's instant (its second, floored) is left out
    assert [(r.id, r.stamp) for r in page.records] == [("8", "2025-01-01T10:20:01Z")]
    assert page.next_cursor == "eyJpZCI6OH0"
    connector.list_changes(PD, SINCE, page.next_cursor)
    assert vendor.params(1)["cursor"] == "eyJpZCI6OH0"


def test_pipedrive_bounds_a_backfill_and_names_custom_fields() -> None:
    custom = "a" * 40
    vendor = Vendor(httpx.Response(200, json={"success": True, "data": []}))
    poll = _poll("organizations", "update_time", ("name", custom), size=900)
    until = Stamp.parse("2025-02-01T00:00:00.250Z")
    assert _build("pipedrive", vendor).list_changes(poll, SINCE, None, until) == ChangePage([])
    params = vendor.params()
    assert vendor.requests[0].url.path == "/api/v2/organizations"
    assert params["updated_until"] == "2025-02-01T00:00:01Z"  # exclusive: the next second
    assert params["custom_fields"] == custom and params["limit"] == "500"


# Zoho CRM -------------------------------------------------------------------------------
ZOHO = _poll("Contacts", "Modified_Time", ("Email", "Last_Name"))


def test_zoho_lists_by_modified_time_with_if_modified_since_a_second_early() -> None:
    rows = [
        {"id": "1", "Email": "old@x.com", "Modified_Time": "2025-01-01T10:19:59+00:00"},
        {"id": "2", "Email": "a@x.com", "Modified_Time": "2025-01-01T10:20:00+00:00"},
        {"id": "3", "Email": "b@x.com", "Modified_Time": "2025-01-01T11:20:01+01:00"},
    ]
    vendor = Vendor(
        httpx.Response(200, json={"data": rows, "info": {"more_records": True, "page": 1}}),
        httpx.Response(304),
    )
    connector = _build("zoho", vendor)
    page = connector.list_changes(ZOHO, SINCE, None)
    request = vendor.requests[0]
    assert str(request.url).startswith(f"{ZOHO_API}/crm/v8/Contacts?")
    assert request.headers["authorization"] == "Zoho-oauthtoken at"
    # "modified after": a second before the cursor's, so its own second is listed again
    assert request.headers["if-modified-since"] == "2025-01-01T10:19:59+00:00"
    assert vendor.params() == {
        "fields": "id,Modified_Time,Email,Last_Name",
        "sort_by": "Modified_Time",
        "sort_order": "asc",
        "per_page": "100",
        "page": "1",
    }
    # the rows before the cursor's instant are dropped here (an offset is read as one)
    assert [r.id for r in page.records] == ["3"]
    assert page.next_cursor == "2"
    assert connector.list_changes(ZOHO, SINCE, "2") == ChangePage([])  # 304: nothing since
    assert vendor.params(1)["page"] == "2"


def test_zoho_pages_past_the_2000th_record_by_page_token() -> None:
    info = {"more_records": True, "page": 10, "next_page_token": "tok-11"}
    vendor = Vendor(
        httpx.Response(200, json={"data": [], "info": info}),
        httpx.Response(200, json={"data": [], "info": {"more_records": False}}),
    )
    connector = _build("zoho", vendor)
    poll = _poll("Contacts", "Modified_Time", ("Email",), size=200)
    page = connector.list_changes(poll, SINCE, "10")
    assert page.next_cursor == "token:tok-11"
    connector.list_changes(poll, SINCE, page.next_cursor)
    assert vendor.params(1)["page_token"] == "tok-11" and "page" not in vendor.params(1)


def test_zoho_answering_204_is_an_empty_page() -> None:
    vendor = Vendor(httpx.Response(204))
    assert _build("zoho", vendor).list_changes(ZOHO, SINCE, None) == ChangePage([])


# Dynamics 365 ---------------------------------------------------------------------------
DV = _poll("contacts", "modifiedon", ("emailaddress1",), size=50)


def test_dynamics_queries_modifiedon_ordered_and_follows_the_next_link() -> None:
    link = f"{ORG}/api/data/v9.2/contacts?$select=x&$skiptoken=%3Ccookie%20pagenumber=%222%22"
    vendor = Vendor(
        httpx.Response(200, json={
            "value": [{"@odata.etag": 'W/"1"', "contactid": "c-1", "emailaddress1": "a@x.com",
                       "modifiedon": "2025-01-01T10:20:01Z"}],
            "@odata.nextLink": link,
        }),
        httpx.Response(200, json={"value": []}),
    )  # fmt: skip
    connector = _build("dynamics", vendor)
    page = connector.list_changes(DV, SINCE, None, Stamp.parse("2025-01-02T00:00:00Z"))
    request = vendor.requests[0]
    assert request.url.path == "/api/data/v9.2/contacts"
    assert vendor.params() == {
        "$select": "contactid,modifiedon,emailaddress1",
        "$filter": "modifiedon ge 2025-01-01T10:20:00.500Z and "
        "modifiedon le 2025-01-02T00:00:00.000Z",
        "$orderby": "modifiedon asc,contactid asc",
    }
    assert request.headers["prefer"] == "odata.maxpagesize=50"
    assert request.headers["odata-version"] == "4.0"
    assert page.records[0].id == "c-1"
    assert page.records[0].record == {
        "contactid": "c-1", "modifiedon": "2025-01-01T10:20:01Z", "emailaddress1": "a@x.com"
    }  # fmt: skip
    assert page.next_cursor == link
    connector.list_changes(DV, SINCE, link)
    assert str(vendor.requests[1].url) == link  # sent back as it is
    assert vendor.requests[1].headers["prefer"] == "odata.maxpagesize=50"


# errors, as a write's -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "poll", "answer"),
    [
        ("pipedrive", PD, httpx.Response(401, json={"success": False, "error": "unauthorized"})),
        ("zoho", ZOHO, httpx.Response(401, json={"code": "INVALID_TOKEN", "details": {},
                                                 "message": "invalid oauth token",
                                                 "status": "error"})),
        ("dynamics", DV, httpx.Response(401)),
    ],
)  # fmt: skip
def test_a_refused_credential_is_an_auth_error(kind: str, poll: PollSpec, answer: Any) -> None:
    # an OAuth connector refreshes once and tries again: refused twice
    vendor = Vendor(answer, answer)
    with pytest.raises(AuthError):
        _build(kind, vendor).list_changes(poll, SINCE, None)


@pytest.mark.parametrize(
    ("kind", "poll", "answer"),
    [
        ("pipedrive", PD, httpx.Response(429, headers={"Retry-After": "7"},
                                         json={"success": False, "error": "Too many"})),
        ("zoho", ZOHO, httpx.Response(429, headers={"Retry-After": "7"},
                                      json={"code": "TOO_MANY_REQUESTS", "details": {},
                                            "message": "too many", "status": "error"})),
        ("dynamics", DV, httpx.Response(429, headers={"Retry-After": "7"}, json={
            "error": {"code": "0x80072322", "message": "Number of requests exceeded"}})),
    ],
)  # fmt: skip
def test_a_429_is_rate_limited_for_the_vendors_retry_after(
    kind: str, poll: PollSpec, answer: Any
) -> None:
    with pytest.raises(RateLimited) as caught:
        _build(kind, Vendor(answer)).list_changes(poll, SINCE, None)
    assert caught.value.retry_after == 7
