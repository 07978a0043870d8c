"""A source's `split:` (one event per element of the arrays it names) and a composite
`event_id` (several values joined): QuickBooks Online's notifications carry several changed
entities, DocuSign Connect's messages are identified by envelope, status and time."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import hub_ledger, make_settings

from core.config import Config, load_config
from core.errors import ConfigError
from core.intake import BadPayload, build_events

#: Intuit's sample notification (developer.intuit.com/app/developer/qbo/docs/develop/webhooks)
#: with two companies, the second with two entities
NOTIFICATION: dict[str, Any] = {
    "eventNotifications": [
        {
            "realmId": "1185883450",
            "dataChangeEvent": {
                "entities": [
                    {
                        "name": "Invoice",
                        "id": "130",
                        "operation": "Update",
                        "lastUpdated": "2015-10-05T14:42:19-0700",
                    }
                ]
            },
        },
        {
            "realmId": "9130350000000001",
            "dataChangeEvent": {
                "entities": [
                    {
                        "name": "Customer",
                        "id": "1",
                        "operation": "Create",
                        "lastUpdated": "2015-10-05T14:42:19-0700",
                    },
                    {
                        "name": "Payment",
                        "id": "163",
                        "operation": "Create",
                        "lastUpdated": "2015-10-05T14:42:20-0700",
                    },
                ]
            },
        },
    ]
}
ENTITY = "eventNotifications.0.dataChangeEvent.entities.0"

CONFIG = f"""
sources:
  quickbooks:
    verify: {{scheme: quickbooks, secret_env: QBO_VERIFIER_TOKEN}}
    split: eventNotifications[].dataChangeEvent.entities[]
    event_id: [eventNotifications.0.realmId, {ENTITY}.name, {ENTITY}.id, {ENTITY}.lastUpdated]
    event_type: {ENTITY}.name
    occurred_at: {ENTITY}.lastUpdated
connections:
  crm: {{connector: http, base_url: "http://127.0.0.1:9"}}
mappings:
  invoices:
    source: quickbooks
    when: {{event_type: Invoice}}
    connection: crm
    object: invoices
    match: {{field: id, from: {ENTITY}.id}}
    fields: {{id: {ENTITY}.id, realm: eventNotifications.0.realmId}}
"""


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    return load_config(write_config(CONFIG), {}, check_secrets=False)


def events(config: Config, body: dict[str, Any], now: float = 1_700_000_000.0) -> list[Any]:
    source = config.sources["quickbooks"]
    return build_events(
        source, config.mappings_for("quickbooks"), {}, {}, json.dumps(body), body, now
    )


def test_one_event_per_entity_each_keeping_the_vendors_shape(config: Config) -> None:
    built = events(config, NOTIFICATION)
    assert [e.external_id for e in built] == [
        "1185883450|Invoice|130|2015-10-05T14:42:19-0700",
        "9130350000000001|Customer|1|2015-10-05T14:42:19-0700",
        "9130350000000001|Payment|163|2015-10-05T14:42:20-0700",
    ]
    assert [e.type for e in built] == ["Invoice", "Customer", "Payment"]
    payment = NOTIFICATION["eventNotifications"][1]["dataChangeEvent"]["entities"][1]
    second = json.loads(built[2].body)
    assert second == {
        "eventNotifications": [
            {
                "realmId": "9130350000000001",
                "dataChangeEvent": {"entities": [payment]},
            }
        ]
    }
    # only the invoice routes to the invoices mapping, with its own record key
    assert [len(e.deliveries) for e in built] == [1, 0, 0]
    assert NOTIFICATION["eventNotifications"][1]["dataChangeEvent"]["entities"][0]["id"] == "1"


def test_a_retried_notification_is_a_duplicate_and_a_later_change_is_not(
    config: Config, tmp_path: Path
) -> None:
    ledger = hub_ledger(make_settings(tmp_path / "none.yaml", "crmhub-split"))
    first = ledger.accept(events(config, NOTIFICATION), 1_700_000_000.0)
    assert [r.duplicate for r in first] == [False, False, False]
    # Intuit retries the same notification; the hub's clock has moved on
    again = ledger.accept(events(config, NOTIFICATION, now=1_700_000_060.0), 1_700_000_060.0)
    assert [r.duplicate for r in again] == [True, True, True]
    later = copy.deepcopy(NOTIFICATION)
    later["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["lastUpdated"] = (
        "2015-10-05T15:00:00-0700"
    )
    changed = ledger.accept(events(config, later, now=1_700_000_120.0), 1_700_000_120.0)
    assert [r.duplicate for r in changed] == [False, True, True]


@pytest.mark.parametrize(
    "body,words",
    [
        ({"eventNotifications": []}, "no element at eventNotifications[].dataChangeEvent"),
        ({"eventNotifications": [{"realmId": "1"}]}, "eventNotifications.0.dataChangeEvent"),
        ({"other": 1}, "eventNotifications is missing"),
        ({"eventNotifications": {"a": 1}}, "not an array"),
    ],
)
def test_a_body_without_the_arrays_is_malformed(
    config: Config, body: dict[str, Any], words: str
) -> None:
    with pytest.raises(BadPayload) as excinfo:
        events(config, body)
    assert words in excinfo.value.detail


def test_every_part_of_a_composite_id_must_be_present(config: Config) -> None:
    body = copy.deepcopy(NOTIFICATION)
    del body["eventNotifications"][1]["dataChangeEvent"]["entities"][1]["lastUpdated"]
    with pytest.raises(BadPayload) as excinfo:
        events(config, body)
    assert "event 2 of the split has no id at `[eventNotifications.0.realmId," in (
        excinfo.value.detail
    )


@pytest.mark.parametrize(
    "source,problem",
    [
        ("split: entities", "each followed by []"),
        ("split: 'a[]..b[]'", "not a dotted path"),
        ("{split: 'a[]', batch: true}", "not both"),
        ("event_id: [id]", "a list of two or more"),
        ("event_type: [a, b]", "expected a dotted JSON path"),
    ],
)
def test_split_and_composite_ids_are_checked_at_load(
    write_config: Callable[..., Path], source: str, problem: str
) -> None:
    spec = source if source.startswith("{") else "{" + source + "}"
    text = f"""
        sources:
          s: {{verify: {{scheme: segment, secret_env: S}}, {spec[1:-1]}}}
        connections: {{}}
        mappings: {{}}
    """
    with pytest.raises(ConfigError) as excinfo:
        load_config(write_config(text), {}, check_secrets=False)
    assert problem in str(excinfo.value)
