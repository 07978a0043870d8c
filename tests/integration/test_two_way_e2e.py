"""Two-way sync end to end (issue 16's proof): `crmhub serve` (receiver, Celery worker, beat
polling both CRMs every second, the real Redis) on the marketing recipe
(examples/recipes/marketing-hubspot-salesforce.yaml), the fake HubSpot and the fake Salesforce
as servers over loopback, 200 contacts alike on both sides.

200 changes are made on both sides at once, by three writers: 80 in HubSpot, 80 in Salesforce,
and 20 conflicts (the same contact changed in both, one right after the other): 10 on the
first name (the newest change wins, by the records' own stamps) and 10 on the lifecycle stage
(Salesforce wins it). Then both sides hold the same values; the hub made exactly one write per
winning change (180) and none for an echo or a losing change (counted in the fakes' request
logs); a conflict's winner is the one the rule names. After that, live changes still flow, and
the lead score flows HubSpot -> Salesforce only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import delete_prefix
from processes import FakeHubSpot, FakeSalesforce, Hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "examples" / "recipes" / "marketing-hubspot-salesforce.yaml"
PAT = "pat-na1-two-way-00000000-0000-0000-0000-000000000000"
SF = {"SF_CLIENT_ID": "sf-two-way", "SF_CLIENT_SECRET": "sf-two-way-secret"}
SF_REFRESH = "sf-two-way-refresh"
CONTACTS = 200
STAGES = ("lead", "marketingqualifiedlead")


def _ms(text: str) -> int:
    return int(
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00")).timestamp()
        * 1000
    )


class Pair:
    def __init__(self, hub: Hub, hubspot: FakeHubSpot, salesforce: FakeSalesforce) -> None:
        self.hub, self.hubspot, self.salesforce = hub, hubspot, salesforce
        self.hs_ids: dict[int, str] = {}
        self.sf_ids: dict[int, str] = {}

    # a user's edits, in each CRM -------------------------------------------------------
    def hs_edit(self, i: int, **props: str) -> int:
        """PATCH the contact as a HubSpot user's app would; its new lastmodifieddate (ms)."""
        response = self.hubspot.http.patch(
            f"/crm/v3/objects/contacts/{self.hs_ids[i]}",
            json={"properties": props},
            headers={"Authorization": f"Bearer {PAT}"},
        )
        assert response.status_code == 200, response.text
        return _ms(response.json()["properties"]["lastmodifieddate"])

    def sf_edit(self, i: int, **fields: Any) -> None:
        """An edit in Salesforce's own UI (the fake's control API: not one of the hub's
        writes in its request log)."""
        self.salesforce.add("Contact", Id=self.sf_ids[i], **fields)

    # what each side holds ---------------------------------------------------------------
    def hs_rows(self) -> dict[str, dict[str, Any]]:
        return {r["properties"]["email"]: r["properties"] for r in self.hubspot.records("contacts")}

    def sf_rows(self) -> dict[str, dict[str, Any]]:
        return {r["Email"]: r for r in self.salesforce.records("Contact")}

    def hub_writes(self) -> tuple[int, int]:
        """Records the hub wrote to (HubSpot, Salesforce), from the fakes' request logs."""
        to_hs = sum(
            len((e.get("body") or {}).get("inputs") or [])
            for e in self.hubspot.log()
            if e.get("endpoint") == "contacts.batch_upsert" and e.get("status") in (200, 207)
        )
        to_sf = 0
        for e in self.salesforce.log():
            endpoint, status = e.get("endpoint") or "", e.get("status") or 500
            if status >= 300:
                continue
            if endpoint in ("sobjects.create", "sobjects.update", "sobjects.upsert"):
                to_sf += 1
            elif endpoint.startswith("composite."):
                to_sf += len((e.get("body") or {}).get("records") or [])
        return to_hs, to_sf

    def write_bodies(self) -> list[Any]:
        return [
            (e["endpoint"], e.get("path"), e.get("body"))
            for e in self.salesforce.log()
            if e.get("endpoint", "").startswith(("sobjects.", "composite."))
            and e.get("method") != "GET"
        ][-40:]

    def differences(self) -> list[str]:
        hs, sf = self.hs_rows(), self.sf_rows()
        out = []
        for email, h in hs.items():
            s = sf.get(email)
            if s is None:
                out.append(f"{email}: not in Salesforce")
                continue
            for hname, sname in (
                ("firstname", "FirstName"),
                ("lastname", "LastName"),
                ("lifecyclestage", "Lifecycle_Stage__c"),
            ):
                if (h.get(hname) or "") != (s.get(sname) or ""):
                    out.append(f"{email}: {hname} {h.get(hname)!r} != {s.get(sname)!r}")
        return out

    def settled(self, timeout: float = 60) -> None:
        """No delivery waiting, none dead."""

        def quiet() -> bool:
            import json

            rows = json.loads(self.hub.cli("status", "--json").stdout)["connections"]
            return all(
                r["counts"]["pending"] + r["counts"]["in_flight"] + r["counts"]["scheduled"] == 0
                for r in rows
            )

        wait_until(quiet, timeout=timeout, interval=0.5, message="every delivery done")


@pytest.fixture
def pair(tmp_path: Path, real_redis_url: str) -> Iterator[Pair]:
    hubspot = FakeHubSpot(
        "--private-app-token", PAT, "--custom-property", "contacts:lead_score:number"
    )
    salesforce = FakeSalesforce(
        "--client-id", SF["SF_CLIENT_ID"], "--client-secret", SF["SF_CLIENT_SECRET"],
        "--refresh-token", SF_REFRESH,
    )  # fmt: skip
    hubspot.limits(ten_secondly=100_000, search_per_second=0)
    prefix = f"crmhub-two-way-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "crmhub.yaml"
    config.write_text(
        RECIPE.read_text()
        .replace("http://127.0.0.1:8901", hubspot.url)
        .replace("http://127.0.0.1:8920", salesforce.url)
        .replace("every: 30s", "every: 1s")
        .replace("rate_limit: {requests: 100, per_seconds: 10}", "")
    )
    # 200 contacts alike on both sides, before the hub starts (a new polling source starts
    # from now: these are history, not changes)
    people = [
        {"email": f"person{i}@example.com", "firstname": f"First{i}", "lastname": f"Last{i}",
         "lifecyclestage": "lead", "lead_score": "10"}
        for i in range(CONTACTS)
    ]  # fmt: skip
    run_pair = Pair(None, hubspot, salesforce)  # type: ignore[arg-type]
    for start in range(0, CONTACTS, 100):
        response = hubspot.http.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": p} for p in people[start : start + 100]]},
            headers={"Authorization": f"Bearer {PAT}"},
        )
        assert response.status_code == 201, response.text
        for result in response.json()["results"]:
            i = int(result["properties"]["email"].removeprefix("person").split("@")[0])
            run_pair.hs_ids[i] = str(result["id"])
    answer = salesforce.http.post(
        "/_control/records",
        json=[
            {
                "object": "Contact",
                "Email": p["email"],
                "FirstName": p["firstname"],
                "LastName": p["lastname"],
                "Lifecycle_Stage__c": "lead",
                "Lead_Score__c": 10,
            }
            for p in people
        ],
    )
    answer.raise_for_status()
    run_pair.sf_ids = dict(enumerate(answer.json()["ids"]))
    env = {
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path / "var"),
        "HUBSPOT_TOKEN": PAT,
        "SF_REFRESH_TOKEN": SF_REFRESH,
        **SF,
    }
    hub = Hub(env, tmp_path)
    run_pair.hub = hub
    try:
        yield run_pair
    finally:
        hub.stop()
        hubspot.stop()
        salesforce.stop()
        delete_prefix(redis.Redis.from_url(real_redis_url), prefix)


def _polling(pair: Pair) -> None:
    """Both sources have made their first poll (their cursors exist): changes from now on
    are seen."""
    client = redis.Redis.from_url(pair.hub.env["CRMHUB_REDIS_URL"])
    prefix = pair.hub.env["CRMHUB_KEY_PREFIX"]
    wait_until(
        lambda: all(
            client.hget(f"{prefix}:poll:{s}", "ms")
            for s in ("hubspot-contacts", "salesforce-contacts")
        ),
        timeout=60,
        message=f"both sources' first poll\n{pair.hub.output()[-3000:]}",
    )
    time.sleep(1.1)  # past the start's margin


def test_two_hundred_changes_on_both_sides_end_consistent_without_echo_writes(
    pair: Pair,
) -> None:
    _polling(pair)
    errors: list[BaseException] = []
    conflicts: dict[int, tuple[int, int]] = {}  # first-name conflicts: (hubspot ms, sf ms)

    def hubspot_writer() -> None:  # 80 changes: first name and lead score
        for i in range(0, 80):
            pair.hs_edit(i, firstname=f"HubSpot{i}", lead_score=str(20 + i))

    def salesforce_writer() -> None:  # 80 changes: first name and stage
        for i in range(80, 160):
            pair.sf_edit(i, FirstName=f"Salesforce{i}", Lifecycle_Stage__c=STAGES[1])

    def name_conflict(i: int, salesforce_newer: bool) -> None:
        if salesforce_newer:
            hs_ms = pair.hs_edit(i, firstname=f"HsConflict{i}")
        else:
            pair.sf_edit(i, FirstName=f"SfConflict{i}")
            hs_ms = pair.hs_edit(i, firstname=f"HsConflict{i}")
        if salesforce_newer:
            # Salesforce's stamps are whole seconds: its change is newer from the next one
            time.sleep(1.05 - (time.time() % 1))
            pair.sf_edit(i, FirstName=f"SfConflict{i}")
        row = next(r for r in pair.salesforce.records("Contact") if r["Id"] == pair.sf_ids[i])
        conflicts[i] = (hs_ms, _ms(row["SystemModstamp"]))

    def conflict_writer() -> None:  # 20 contacts changed in both
        # 5 first names changed in HubSpot, then a second later in Salesforce, HubSpot's
        # polling paused meanwhile (so the hub sees both): Salesforce's is the newer
        pair.hub.cli("pause", "hubspot")
        for i in range(160, 165):
            name_conflict(i, salesforce_newer=True)
        pair.hub.cli("resume", "hubspot")
        for n, i in enumerate(range(165, 180)):
            if i < 170:  # 5 first names, back to back: HubSpot's (ms stamps) is the newer
                name_conflict(i, salesforce_newer=False)
            elif n % 2 == 0:  # 10 lifecycle stages: Salesforce wins them, whatever the order
                pair.hs_edit(i, lifecyclestage="opportunity")
                pair.sf_edit(i, Lifecycle_Stage__c="customer")
            else:
                pair.sf_edit(i, Lifecycle_Stage__c="customer")
                pair.hs_edit(i, lifecyclestage="opportunity")

    def guarded(target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported below
                errors.append(exc)

        return run

    threads = [
        threading.Thread(target=guarded(w))
        for w in (hubspot_writer, salesforce_writer, conflict_writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    last_change = time.monotonic()

    wait_until(
        lambda: not pair.differences() and sum(pair.hub_writes()) >= 180,
        timeout=60,
        interval=0.2,
        message=f"consistent: {pair.differences()[:5]} writes {pair.hub_writes()}\n"
        f"{pair.hub.output()[-3000:]}",
    )
    consistent_after = time.monotonic() - last_change
    pair.settled()
    time.sleep(3)  # three more polls of each side: an echo would be written by now
    assert not pair.differences()
    # one write per winning change: 80 + 80 one-sided, 10 first-name conflicts (one write
    # each, to the loser's side), 10 stage conflicts (Salesforce's, to HubSpot)
    to_hs, to_sf = pair.hub_writes()
    assert to_hs + to_sf == 180, (to_hs, to_sf, pair.write_bodies())
    hubspot_won = sum(1 for hs_ms, sf_ms in conflicts.values() if hs_ms >= sf_ms)
    assert (to_hs, to_sf) == (80 + 10 + 10 - hubspot_won, 80 + hubspot_won)
    hs, sf = pair.hs_rows(), pair.sf_rows()
    for i in range(80):
        email = f"person{i}@example.com"
        assert sf[email]["FirstName"] == f"HubSpot{i}" and sf[email]["Lead_Score__c"] == 20 + i
    for i in range(80, 160):
        email = f"person{i}@example.com"
        assert hs[email]["firstname"] == f"Salesforce{i}"
        assert hs[email]["lifecyclestage"] == STAGES[1]
    for i, (hs_ms, sf_ms) in conflicts.items():
        email = f"person{i}@example.com"
        # ties go to the side whose connection name sorts first: hubspot
        winner = f"HsConflict{i}" if hs_ms >= sf_ms else f"SfConflict{i}"
        assert hs[email]["firstname"] == winner, (i, hs_ms, sf_ms)
    assert {i for i, (h, s) in conflicts.items() if s > h} == set(range(160, 165))
    for i in range(170, 180):
        assert hs[f"person{i}@example.com"]["lifecyclestage"] == "customer"
    print(f"\ntwo-way: 200 changes, {to_hs + to_sf} writes ({to_hs} to HubSpot, {to_sf} to "
          f"Salesforce), consistent {consistent_after:.1f} s after the last change")  # fmt: skip

    # live changes after: each way, and the lead score only HubSpot -> Salesforce
    pair.hs_edit(0, lifecyclestage="customer")
    pair.sf_edit(1, FirstName="Later", Lead_Score__c=99)
    wait_until(
        lambda: (
            pair.sf_rows()["person0@example.com"]["Lifecycle_Stage__c"] == "customer"
            and pair.hs_rows()["person1@example.com"]["firstname"] == "Later"
        ),
        timeout=30,
        message="live changes after",
    )
    pair.settled()
    time.sleep(3)
    assert pair.hs_rows()["person1@example.com"]["lead_score"] == "21"  # not Salesforce's 99
    assert pair.sf_rows()["person1@example.com"]["Lead_Score__c"] == 99  # and it stays there
    assert pair.hub_writes()[0] + pair.hub_writes()[1] == 182
    assert not pair.differences()
