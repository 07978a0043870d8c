"""The QuickBooks connector (connectors/quickbooks.py) against the fake QuickBooks Online the
package ships (connectors/fakes/quickbooks/), in-process behind its httpx transport, with the
ledger's token store on fakeredis: what a mapping's `fetch:` gets, and how each of Intuit's
answers is classified."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import httpx
import pytest

from connectors.fakes.quickbooks import FakeQuickBooks
from connectors.fakes.transport import FakeTransport
from connectors.quickbooks import API, QuickBooksConnector
from connectors.registry import CONNECTORS
from core.config import ConnectionConfig
from core.errors import AuthError, DataError, RateLimited, TransientError
from core.ledger.keys import LedgerKeys
from core.ledger.tokens import TokenStore
from core.mapping.record import MappedRecord
from core.vocabulary import DeadCategory

REALM = "9130350000000001"
ENV = {
    "QBO_CLIENT_ID": "fake-qbo-client-id",
    "QBO_CLIENT_SECRET": "fake-qbo-client-secret",
    "QBO_REFRESH_TOKEN": "fake-qbo-refresh-token",
}
AUTH = {
    "type": "oauth2",
    "client_id_env": "QBO_CLIENT_ID",
    "client_secret_env": "QBO_CLIENT_SECRET",
    "refresh_token_env": "QBO_REFRESH_TOKEN",
}
#: the invoice of Intuit's "Read an invoice" sample response (trimmed to what a recipe reads)
INVOICE: dict[str, Any] = {
    "Id": "130",
    "DocNumber": "1037",
    "TxnDate": "2014-09-19",
    "DueDate": "2014-10-19",
    "TotalAmt": 362.07,
    "Balance": 362.07,
    "CustomerRef": {"name": "Sonnenschein Family Store", "value": "24"},
    "BillEmail": {"Address": "Familiystore@intuit.com"},
}


def add(fake: FakeQuickBooks, entity: str, **fields: Any) -> None:
    """A record as the company's bookkeeper makes it in QuickBooks."""
    answer = fake.handle(
        "POST", "/_control/records", "", {}, json.dumps({"entity": entity, **fields}).encode()
    )
    assert answer.status in (200, 201)


def connector(
    fake: FakeQuickBooks, realm: str = REALM, **options: Any
) -> tuple[QuickBooksConnector, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    class Recorder(FakeTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return super().handle_request(request)

    connection = ConnectionConfig(
        name="quickbooks",
        connector="quickbooks",
        base_url=API,
        auth=AUTH,
        options={"realm_id": realm, **options},
    )
    made = QuickBooksConnector(
        connection,
        ENV,
        transport=Recorder(fake),
        tokens=TokenStore(fakeredis.FakeRedis(), LedgerKeys("t")),
    )
    return made, seen


def test_fetch_reads_the_entity_with_an_intuit_token() -> None:
    fake = FakeQuickBooks()
    add(fake, "Invoice", **INVOICE)
    qbo, seen = connector(fake)
    record = qbo.fetch("Invoice", "130", [])
    assert record["DocNumber"] == "1037" and record["Balance"] == 362.07
    assert record["CustomerRef"] == {"name": "Sonnenschein Family Store", "value": "24"}
    token, read = seen
    assert str(token.url) == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert token.headers["Authorization"].startswith("Basic ")
    assert b"client_secret" not in token.read()  # the credentials go as HTTP Basic only
    assert str(read.url) == f"{API}/v3/company/{REALM}/invoice/130?minorversion=75"
    assert read.headers["Authorization"].startswith("Bearer eyJ-fake-qbo-")


def test_a_missing_record_is_a_dead_letter_source_record_missing() -> None:
    qbo, _ = connector(FakeQuickBooks())
    with pytest.raises(DataError) as excinfo:
        qbo.fetch("Payment", "404", [])
    assert excinfo.value.category == DeadCategory.SOURCE_RECORD_MISSING
    assert "Object Not Found" in str(excinfo.value)
    found = qbo.fetch_many("Payment", ["404"], [])
    assert isinstance(found["404"], DataError)


def test_an_expired_token_is_refreshed_once_and_a_revoked_grant_pauses() -> None:
    fake = FakeQuickBooks()
    add(fake, "Customer", Id="1")
    qbo, _ = connector(fake)
    assert qbo.fetch("Customer", "1", [])["Id"] == "1"
    fake.handle("POST", "/_control/faults", "", {}, b'{"mode": "expire_tokens"}')
    assert qbo.fetch("Customer", "1", [])["Id"] == "1"  # one refresh, one more try
    fake.handle("POST", "/_control/faults", "", {}, b'{"mode": "expire_tokens"}')
    fake.handle("POST", "/_control/faults", "", {}, b'{"mode": "revoke_refresh_token"}')
    with pytest.raises(AuthError, match="invalid_grant"):
        qbo.fetch("Customer", "1", [])


def test_another_company_is_refused_as_auth_and_throttling_cools_down() -> None:
    fake = FakeQuickBooks()
    other, _ = connector(fake, realm="123")
    with pytest.raises(AuthError, match="403"):
        other.fetch("Invoice", "130", [])
    qbo, _ = connector(fake)
    fake.handle("POST", "/_control/faults", "", {}, b'{"mode": "throttle", "count": 1}')
    with pytest.raises(RateLimited) as excinfo:
        qbo.fetch("Invoice", "130", [])
    assert excinfo.value.retry_after == 60.0
    fake.handle("POST", "/_control/faults", "", {}, b'{"mode": "error5xx", "count": 1}')
    with pytest.raises(TransientError):
        qbo.fetch("Invoice", "130", [])


def test_quickbooks_is_registered_and_never_written_to() -> None:
    assert CONNECTORS["quickbooks"] is QuickBooksConnector
    qbo, seen = connector(FakeQuickBooks())
    record = MappedRecord("m", "quickbooks", "Invoice", "upsert", "Id", "1")
    with pytest.raises(DataError, match="never writes to") as excinfo:
        qbo.deliver(record)
    assert excinfo.value.category == DeadCategory.MAPPING
    assert seen == []
    missing, _ = connector(FakeQuickBooks(), realm="")
    with pytest.raises(DataError, match=r"options\.realm_id"):
        missing.fetch("Invoice", "1", [])


def test_the_minor_version_is_the_connections_option() -> None:
    fake = FakeQuickBooks()
    add(fake, "Invoice", **INVOICE)
    qbo, seen = connector(fake, minor_version=70)
    qbo.fetch("Invoice", "130", [])
    assert seen[-1].url.params["minorversion"] == "70"
