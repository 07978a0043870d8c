"""Polling Pipedrive, Zoho CRM and Dynamics 365 end to end (issue 16, the other CRMs): for
each, a real hub (the Procfile's web, worker and beat on a real Redis) polls the vendor's fake,
served over loopback, while its records change:

- 150 records made in one request (one second's stamp holds more records than a page of 100:
  page boundaries fall inside one stamp), while the hub polls every second;
- the listing slowed (400 ms a request), 260 more made, and the worker and beat SIGKILLed
  once a page of them is recorded and before the rest is (between two pages), then started
  again (CRMHUB_POLL_LOCK_SECONDS=8: the killed poller's lock lapses in 8 s);
- 100 of the first records edited while the hub is down (each edit a new version);

and every change is recorded exactly once: 510 events per vendor, none missing, none twice.
"""

from __future__ import annotations

import collections
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from polled import PolledHub
from ports import free_port
from processes import FakeDynamics, FakePipedrive, FakeServer, FakeZoho, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]


@dataclass(frozen=True)
class Vendor:
    fake: type[FakeServer]
    obj: str  # the object, module or entity set
    key: str  # the record's id field
    edit: str  # the field an edit changes
    make: str  # a field a new record needs, given its number
    poll: str
    connection: str
    env: dict[str, str]


VENDORS = {
    "pipedrive": Vendor(
        FakePipedrive, "persons", "id", "name", "name",
        "{connection: crm, object: persons, every: 1s, cursor: update_time, page_size: 100}",
        "{connector: pipedrive, base_url: '{url}', auth: {type: api_token, token_env: PD_TOKEN}}",
        {"PD_TOKEN": "fake-pipedrive-api-token"},
    ),
    "zoho": Vendor(
        FakeZoho, "Contacts", "id", "Title", "Last_Name",
        "{connection: crm, object: Contacts, every: 1s, cursor: Modified_Time, "
        "fields: [Last_Name, Title], page_size: 100, lookback: 30s}",
        "{connector: zoho, accounts_url: '{url}', auth: {type: oauth2, client_id_env: ZID, "
        "client_secret_env: ZSECRET, refresh_token_env: ZREFRESH}}",
        {"ZID": "1000.FAKEZOHOCLIENT", "ZSECRET": "fake-zoho-client-secret",
         "ZREFRESH": "1000.fake-zoho-refresh-token"},
    ),
    "dynamics": Vendor(
        FakeDynamics, "contacts", "contactid", "jobtitle", "lastname",
        "{connection: crm, object: contacts, every: 1s, cursor: modifiedon, "
        "fields: [lastname, jobtitle], page_size: 100}",
        "{connector: dynamics, base_url: '{url}', auth: {type: client_credentials, "
        "token_url: '{url}/00000000-0000-0000-0000-0000000000aa/oauth2/v2.0/token', "
        "client_id_env: DID, client_secret_env: DSECRET}}",
        {"DID": "fake-dynamics-client-id", "DSECRET": "fake-dynamics-client-secret"},
    ),
}  # fmt: skip
SOURCE = "crm-changes"


class Polled(PolledHub):
    def __init__(self, env: dict[str, str], cwd: Path, vendor: Vendor, fake: FakeServer):
        super().__init__(env, cwd, SOURCE)
        self.vendor, self.fake = vendor, fake

    def save(self, changes: list[dict[str, Any]]) -> list[str]:
        """Made (or edited: with an `id`) in one request, as fast as the fake makes them."""
        param = self.fake.object_param
        body = [{param: self.vendor.obj, **change} for change in changes]
        response = self.fake.http.post("/_control/records", json=body)
        response.raise_for_status()
        return [str(i) for i in response.json()["ids"]]


@pytest.fixture(params=sorted(VENDORS))
def polled(request: Any, tmp_path: Path, real_redis_url: str) -> Iterator[Polled]:
    vendor = VENDORS[request.param]
    fake = vendor.fake()
    prefix = f"crmhub-pollcrm-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    connection = vendor.connection.replace("{url}", fake.url)
    config.write_text(
        f"sources:\n  {SOURCE}:\n    poll: {vendor.poll}\nconnections:\n  crm: {connection}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "CRMHUB_PORT": str(free_port()),
        "CRMHUB_POLL_LOCK_SECONDS": "8",
        **vendor.env,
    }
    run = Polled(env, tmp_path, vendor, fake)
    run.start(("web", "worker", "beat"))
    try:
        yield run
    finally:
        run.stop()
        fake.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


def test_every_change_is_recorded_once_across_page_boundaries_and_a_killed_poller(
    polled: Polled,
) -> None:
    vendor = polled.vendor
    wait_until(lambda: "ms" in polled.cursor(), timeout=60, message="the source's first poll")
    time.sleep(1.1)  # past the start's margin: everything below is a change after the start
    made: list[str] = []

    def wave(count: int) -> None:
        n = len(made)
        made.extend(polled.save([{vendor.make: f"R{n + i}"} for i in range(count)]))

    def caught_up(expected: int, message: str) -> None:
        wait_until(
            lambda: polled.recorded() >= expected,
            timeout=90,
            message=f"{message}: {polled.recorded()} of {expected} recorded\n{polled.output()}",
        )

    wave(150)  # one request: one second's stamp holds more records than a page
    caught_up(150, "the first wave")

    # slow listings, then kill the worker and beat between two pages of one listing
    polled.fake.fault(mode="latency", latency_ms=400, methods=["GET"])
    before = int(polled.cursor().get("listed") or 0)
    wave(260)
    wait_until(
        lambda: int(polled.cursor().get("listed") or 0) >= before + 100,
        timeout=60,
        message=f"a page of the slowed listing\n{polled.output()}",
    )
    mid = polled.recorded()
    polled.kill()
    assert mid < 410, "the listing should still have been under way"
    # edits of recorded records while the hub is down: each a new version
    polled.save([{"id": made[i], vendor.edit: f"E{i}"} for i in range(100)])
    polled.fake.clear_faults()
    polled.start()
    caught_up(510, "after the restart")
    time.sleep(3)  # a few more polls: nothing more may arrive

    bodies = polled.bodies()
    versions = collections.Counter(
        (str(b[vendor.key]), b.get(vendor.edit) if str(b.get(vendor.edit)).startswith("E") else "")
        for b in bodies
    )
    assert len(bodies) == 510, f"{len(bodies)} events for 510 changes"
    assert max(versions.values()) == 1, "a change recorded twice"
    assert set(versions) == {(i, "") for i in made} | {(made[i], f"E{i}") for i in range(100)}
    stamps = collections.Counter(str(b[polled_stamp(polled)]) for b in bodies)
    assert max(stamps.values()) > 100, "no stamp held more records than a page"
    assert polled.fake.violations() == []


def polled_stamp(polled: Polled) -> str:
    return {"persons": "update_time", "Contacts": "Modified_Time", "contacts": "modifiedon"}[
        polled.vendor.obj
    ]
