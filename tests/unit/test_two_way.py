"""Two-way sync: the pair's configuration and its errors (core/config/two_way.py), the decision
(core/two_way.py: echo, stale listings, conflicts by newest stamp or by side, per field, and
field-level direction), what a pair knows (core/ledger/agreed.py, `crmhub pairs show`) and
the delivery step (workers/two_way.py) against the in-process fake HubSpot and fake
Salesforce."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner
from conftest import make_settings

from app.cli import main
from app.cli.common import EXIT_NOT_FOUND, CliContext
from connectors.fakes.hubspot import FakeHubSpot
from connectors.fakes.salesforce import FakeSalesforce
from connectors.fakes.transport import FakeTransport
from connectors.hubspot import HubSpotConnector
from connectors.registry import CONNECTORS
from connectors.salesforce import SalesforceConnector
from core.config import load_config
from core.config.two_way import Pair, pair_of
from core.errors import ConfigError, Deferred
from core.ledger.agreed import read_known, record_known, record_known_view
from core.mapping import map_event
from core.two_way import Change, Known, Plan, Twin, first_look, settle, settled, slot
from workers.runtime import WorkerRuntime
from workers.two_way import after_write, before_write

ROOT = Path(__file__).resolve().parents[2]
RECIPE = (ROOT / "examples" / "recipes" / "marketing-hubspot-salesforce.yaml").read_text()
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
ENV = {
    "HUBSPOT_TOKEN": TOKEN,
    "SF_CLIENT_ID": "fake-sf-client-id",
    "SF_CLIENT_SECRET": "fake-sf-client-secret",
    "SF_REFRESH_TOKEN": "fake-sf-refresh-token",
}
HS, SF = "hubspot", "salesforce"
PAIR = Pair("p", (SF, HS), "newest", {"lifecyclestage": SF}, 86400)
WriteConfig = Callable[..., Path]


def change(side: str = HS, stamp: int = 2000, **values: Any) -> Change:
    target = SF if side == HS else HS
    names = {"Lifecycle_Stage__c": ("Lifecycle_Stage__c", "lifecyclestage")}
    return Change(side, target, stamp, values, names, own={})


def known(**slots: tuple[str, int, str]) -> Known:
    """known(**{"salesforce:FirstName": ("Ada", 1000, "hubspot")})"""
    return Known(
        {k: v[0] for k, v in slots.items()},
        {k: v[1] for k, v in slots.items()},
        {k: v[2] for k, v in slots.items()},
    )


def decide(c: Change, k: Known, twin: Twin | None, pair: Pair = PAIR) -> Plan:
    looked = first_look(c, k)
    return settle(c, k, twin, pair, looked) if looked.unsettled else looked


# the decision ---------------------------------------------------------------------------
def test_a_change_the_target_does_not_hold_is_written() -> None:
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS)})
    plan = decide(change(FirstName="Augusta"), k, Twin({"FirstName": "Ada"}, 1000))
    assert plan.write == ("FirstName",)


def test_an_echo_is_held_without_reading_the_target() -> None:
    """The hub's own write coming back: its values are what the other side holds."""
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS)})
    looked = first_look(change(FirstName="Ada", stamp=9000), k)
    assert looked.held == ("FirstName",) and not looked.unsettled  # no read needed


def test_values_compare_as_text_whatever_their_json_type() -> None:
    k = known(**{"salesforce:Lead_Score__c": ("42", 1000, HS)})
    assert first_look(change(Lead_Score__c=42.0), k).held == ("Lead_Score__c",)


def test_only_the_changed_fields_are_written() -> None:
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS), "salesforce:LastName": ("L", 1000, HS)})
    plan = decide(
        change(FirstName="Augusta", LastName="L"), k, Twin({"FirstName": "Ada", "LastName": "L"}, 1)
    )
    assert plan.write == ("FirstName",) and plan.held == ("LastName",)


def test_a_record_missing_at_the_target_gets_every_field() -> None:
    plan = decide(change(FirstName="Ada", Email="a@example.com"), Known(), None)
    assert set(plan.write) == {"FirstName", "Email"}


def test_a_value_the_target_already_has_is_not_written() -> None:
    plan = decide(change(FirstName="Ada"), Known(), Twin({"FirstName": "Ada"}, 1))
    assert plan.write == () and plan.held == ("FirstName",)


def test_conflict_newest_wins_by_the_records_stamps() -> None:
    """Both changed the field since they agreed on "Ada": the newer stamp wins, and the same
    winner whichever direction decides."""
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS), "hubspot:firstname": ("Ada", 1000, HS)})
    hubspot_change = change(HS, 3000, FirstName="FromHubSpot")
    salesforce_change = change(SF, 2000, firstname="FromSalesforce")
    assert decide(hubspot_change, k, Twin({"FirstName": "FromSalesforce"}, 2000)).write
    assert decide(salesforce_change, k, Twin({"firstname": "FromHubSpot"}, 3000)).lost


def test_conflict_equal_stamps_go_to_one_side_both_ways() -> None:
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS), "hubspot:firstname": ("Ada", 1000, HS)})
    from_hs = decide(change(HS, 2000, FirstName="H"), k, Twin({"FirstName": "S"}, 2000))
    from_sf = decide(change(SF, 2000, firstname="S"), k, Twin({"firstname": "H"}, 2000))
    assert bool(from_hs.write) != bool(from_sf.write)  # exactly one wins
    assert from_hs.write == ("FirstName",)  # "hubspot" sorts first


def test_conflict_a_side_wins_a_field_whatever_the_stamps() -> None:
    """fields: {lifecyclestage: salesforce}: named by HubSpot's field, it rules the
    Salesforce field the HubSpot field maps to, too."""
    k = known(**{"salesforce:Lifecycle_Stage__c": ("lead", 1000, HS)})
    newer_hubspot = change(HS, 9000, Lifecycle_Stage__c="opportunity")
    plan = decide(newer_hubspot, k, Twin({"Lifecycle_Stage__c": "customer"}, 2000))
    assert plan.lost == ("Lifecycle_Stage__c",) and plan.write == ()
    older_salesforce = change(SF, 2000, lifecyclestage="customer")
    k2 = known(**{"hubspot:lifecyclestage": ("lead", 1000, SF)})
    plan = decide(older_salesforce, k2, Twin({"lifecyclestage": "opportunity"}, 9000))
    assert plan.write == ("lifecyclestage",)


def test_conflict_a_side_wins_everything_with_wins_side() -> None:
    pair = Pair("p", (SF, HS), SF, {}, 86400)
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS)})
    plan = decide(change(HS, 9000, FirstName="H"), k, Twin({"FirstName": "S"}, 2000), pair)
    assert plan.lost == ("FirstName",)


def test_a_target_value_never_agreed_is_a_competing_change() -> None:
    """No agreement yet (a record from before the pair): the target's differing value is its
    own change, settled by the rule; an empty one is not."""
    older = change(HS, 1000, FirstName="H")
    assert decide(older, Known(), Twin({"FirstName": "S"}, 5000)).lost == ("FirstName",)
    assert decide(older, Known(), Twin({"FirstName": ""}, 5000)).write == ("FirstName",)


def test_an_unchanged_target_field_takes_the_change_whatever_its_stamp() -> None:
    """The target record is newer because of another field: no conflict on this one."""
    k = known(**{"salesforce:FirstName": ("Ada", 1000, HS)})
    plan = decide(change(HS, 2000, FirstName="H"), k, Twin({"FirstName": "Ada"}, 9000))
    assert plan.write == ("FirstName",)


def test_a_lagging_listing_older_than_the_other_sides_settled_change_is_stale() -> None:
    k = known(**{"salesforce:FirstName": ("S", 5000, SF)})
    assert first_look(change(HS, 4000, FirstName="H"), k).stale == ("FirstName",)
    assert first_look(change(HS, 6000, FirstName="H"), k).unsettled == ("FirstName",)


def test_a_sides_own_successive_changes_are_never_stale() -> None:
    """Salesforce stamps whole seconds: two edits in one second must both go through."""
    k = known(**{"hubspot:firstname": ("First", 5000, SF)})
    assert first_look(change(SF, 5000, firstname="Second"), k).unsettled == ("firstname",)


def test_a_listing_older_than_the_hubs_write_of_that_field_is_stale() -> None:
    """Salesforce won the stage and the hub wrote it to HubSpot at 7000: HubSpot's listing
    from 4000 (its losing value) must not overwrite Salesforce's."""
    k = Known(
        {"salesforce:Lifecycle_Stage__c": "customer", "hubspot:lifecyclestage": "customer"},
        {"salesforce:Lifecycle_Stage__c": 3000, "hubspot:lifecyclestage": 3000},
        {"salesforce:Lifecycle_Stage__c": SF, "hubspot:lifecyclestage": SF},
        {"hubspot:lifecyclestage": 7000},
    )
    lagging = Change(
        HS,
        SF,
        4000,
        {"Lifecycle_Stage__c": "opportunity"},
        {"Lifecycle_Stage__c": ("Lifecycle_Stage__c", "lifecyclestage")},
        own={"lifecyclestage": "opportunity"},
    )
    assert first_look(lagging, k).stale == ("Lifecycle_Stage__c",)
    later = Change(HS, SF, 8000, lagging.values, lagging.names, own=lagging.own)
    assert first_look(later, k).unsettled == ("Lifecycle_Stage__c",)


def test_settled_records_what_each_side_holds_and_keeps_an_echos_origin() -> None:
    c = Change(HS, SF, 2000, {"FirstName": "H"}, {}, own={"firstname": "H", "lastname": "L"})
    out = settled(c, Plan(write=("FirstName",)), Known())
    assert out == {
        "salesforce:FirstName": ("H", 2000, HS),
        "hubspot:firstname": ("H", 2000, HS),
        "hubspot:lastname": ("L", 2000, HS),
    }
    # the echo (stamp 9000) of what is known already changes nothing
    echo = Change(SF, HS, 9000, {"firstname": "H"}, {}, own={"FirstName": "H"})
    k = known(**{k: v for k, v in out.items()})
    assert settled(echo, Plan(held=("firstname",)), k) == {}


def test_a_losing_change_records_nothing_of_its_side() -> None:
    c = Change(HS, SF, 2000, {"FirstName": "H"}, {}, own={"firstname": "H"})
    assert settled(c, Plan(lost=("FirstName",)), Known()) == {}


# the configuration ------------------------------------------------------------------------
def _load(write_config: WriteConfig, text: str) -> Any:
    return load_config(write_config(text), ENV, connectors=CONNECTORS)


def test_the_recipe_is_a_pair(write_config: WriteConfig) -> None:
    config = _load(write_config, RECIPE)
    pair = pair_of(config, config.mappings["hubspot-to-salesforce"])
    assert pair is not None and set(pair.sides) == {HS, SF}
    assert pair.wins == "newest" and pair.fields == {"lifecyclestage": SF}
    assert pair.keep_seconds == 90 * 86400
    assert pair_of(config, config.mappings["salesforce-to-hubspot"]) == pair


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("    two_way: {pair: marketing-contacts}\n", "    two_way: {pair: other}\n"),
            "a pair is exactly two mappings",
        ),
        (("wins: newest,", "wins: oldest,"), "unknown 'oldest'; expected newest or a side"),
        (("{lifecyclestage: salesforce}", "{stage: salesforce}"), "neither mapping of pair"),
        (("{lifecyclestage: salesforce}", "{lifecyclestage: zoho}"), "unknown 'zoho'"),
        (("keep_days: 90", "keep_days: 0"), "keep_days"),
        (
            (
                "    connection: hubspot\n    object: contacts\n",
                "    connection: salesforce\n    object: contacts\n",
            ),
            "opposite directions between the same two connections",
        ),
    ],
)
def test_a_pair_written_wrong_is_refused_saying_what_and_where(
    write_config: WriteConfig, edit: tuple[str, str], message: str
) -> None:
    old, new = edit
    assert old in RECIPE
    with pytest.raises(ConfigError) as caught:
        _load(write_config, RECIPE.replace(old, new, 1))
    assert message in str(caught.value)
    assert "mappings." in str(caught.value) or "sources." in str(caught.value)


def test_a_pair_on_a_source_that_does_not_poll_is_refused(write_config: WriteConfig) -> None:
    text = RECIPE.replace(
        "  salesforce-contacts:\n",
        "  salesforce-hooks:\n    verify: {scheme: hmac-sha256, secret_env: SF_CLIENT_SECRET}\n"
        "  salesforce-contacts:\n",
    ).replace("    source: salesforce-contacts\n", "    source: salesforce-hooks\n")
    with pytest.raises(ConfigError, match="does not poll; a pair's mappings read"):
        _load(write_config, text)


# what a pair knows, and the delivery step --------------------------------------------------
class Env:
    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt
        self.salesforce = FakeSalesforce()
        self.hubspot = FakeHubSpot(
            private_app_token=TOKEN, custom_properties=["contacts:lead_score:number"]
        )
        shared: dict[str, Any] = {"tokens": rt.ledger.tokens, "memo": rt.ledger.memo}
        connections = rt.config.connections
        rt._connectors[SF] = SalesforceConnector(
            connections[SF], rt.settings.environ, transport=FakeTransport(self.salesforce), **shared
        )
        rt._connectors[HS] = HubSpotConnector(
            connections[HS], rt.settings.environ, transport=FakeTransport(self.hubspot), **shared
        )

    def deliver(self, mapping: str, body: dict[str, Any]) -> str:
        """The delivery's two-way step and write, as workers/delivery.py runs them."""
        record = map_event(self.rt.config.mappings[mapping], body)
        record, step, result = before_write(self.rt, mapping, body, record)
        if result is None:
            result = self.rt.connector(record.connection).deliver(record)
        after_write(self.rt, step, record, result)
        self.excerpt = result.excerpt
        return result.operation


@pytest.fixture
def env(write_config: WriteConfig, key_prefix: str) -> Iterator[Env]:
    settings = make_settings(write_config(RECIPE), key_prefix, redis_url="redis://unused", **ENV)
    e = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    yield e
    e.rt.close()
    assert e.salesforce.violations() == [] and e.hubspot.violations() == []


def hubspot_listing(stamp: str, **props: str) -> dict[str, Any]:
    base = {"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace",
            "lifecyclestage": "lead", "lead_score": "10"}  # fmt: skip
    return {"id": "51", "properties": {**base, **props, "lastmodifieddate": stamp}}


def test_the_ledger_keeps_what_a_pair_knows_and_the_link(env: Env) -> None:
    ledger = env.rt.ledger
    record_known(
        ledger, "p", "ada@example.com", {slot(SF, "FirstName"): ("Ada", 1000, HS)},
        {HS: "51", SF: "003x"}, 3600, written={slot(SF, "FirstName"): 1200},
    )  # fmt: skip
    k = read_known(ledger, "p", "ada@example.com")
    assert k.values == {"salesforce:FirstName": "Ada"} and k.stamps["salesforce:FirstName"] == 1000
    assert k.origins["salesforce:FirstName"] == HS and k.written["salesforce:FirstName"] == 1200
    assert record_known_view(ledger, "p", "ada@example.com").ids == {HS: "51", SF: "003x"}
    assert 0 < env.rt.ledger.redis.ttl(f"{ledger.keys.prefix}:agreed:p:ada@example.com") <= 3600


def test_one_change_one_write_and_its_echo_none(env: Env) -> None:
    """HubSpot's new contact is created in Salesforce (found on its email); Salesforce's
    listing of that write comes back and writes nothing; then only a changed field goes."""
    assert env.deliver("hubspot-to-salesforce", hubspot_listing("2026-12-04T10:00:00.100Z")) in (
        "created", "updated",
    )  # fmt: skip
    (row,) = env.salesforce.records("Contact")
    assert row["Lifecycle_Stage__c"] == "lead" and row["Lead_Score__c"] == 10
    echo = {k: row[k] for k in ("Id", "Email", "FirstName", "LastName", "Lifecycle_Stage__c")}
    echo["SystemModstamp"] = row["SystemModstamp"]
    assert env.deliver("salesforce-to-hubspot", echo) == "unchanged"
    assert env.excerpt.startswith("two-way: nothing to write (held by the target already: ")
    assert len(env.hubspot.records("contacts")) == 0  # nothing came back
    writes = len([e for e in env.salesforce.log() if e["method"] in ("POST", "PATCH")])
    later = hubspot_listing("2026-12-04T10:00:05.000Z", lead_score="55")
    assert env.deliver("hubspot-to-salesforce", later) == "updated"
    patches = [e for e in env.salesforce.log() if e["method"] in ("POST", "PATCH")][writes:]
    (patch,) = patches
    assert set(patch["body"]) <= {"Email", "Lead_Score__c"}  # only the change (and the key)


def test_a_field_mapped_one_way_does_not_flow_back(env: Env) -> None:
    """The lead score flows HubSpot -> Salesforce only: a Salesforce edit of it writes
    nothing to HubSpot, and HubSpot's next echo does not overwrite it."""
    env.deliver("hubspot-to-salesforce", hubspot_listing("2026-12-04T10:00:00.100Z"))
    (row,) = env.salesforce.records("Contact")
    listing = {k: row[k] for k in ("Id", "Email", "FirstName", "LastName", "Lifecycle_Stage__c")}
    listing["SystemModstamp"] = "2026-12-04T10:00:09.000+0000"
    assert env.deliver("salesforce-to-hubspot", listing) == "unchanged"


def test_the_audit_lists_a_pairs_mappings_as_two_way(env: Env) -> None:
    from core.audit import integration_audit

    rows = integration_audit(env.rt.ledger, env.rt.config)["integrations"]
    assert {r["mapping"]: r["direction"] for r in rows} == {
        "hubspot-to-salesforce": "two_way",
        "salesforce-to-hubspot": "two_way",
    }


def test_the_read_of_the_target_takes_its_place_in_the_targets_rate_limit(
    write_config: WriteConfig, key_prefix: str
) -> None:
    """A change the pair cannot settle alone reads Salesforce's record first: that read takes
    a place in Salesforce's rate limit, and with none left the delivery waits (Deferred: no
    attempt used) instead of going over it."""
    limited = RECIPE.replace(
        "           refresh_token_env: SF_REFRESH_TOKEN}\n",
        "           refresh_token_env: SF_REFRESH_TOKEN}\n"
        "    rate_limit: {requests: 1, per_seconds: 60}\n",
        1,
    )
    settings = make_settings(write_config(limited), key_prefix, redis_url="redis://unused", **ENV)
    env = Env(WorkerRuntime.build(settings, client=fakeredis.FakeRedis()))
    assert env.deliver("hubspot-to-salesforce", hubspot_listing("2026-12-04T10:00:00.100Z")) in (
        "created", "updated",
    )  # fmt: skip
    ledger = env.rt.ledger
    assert ledger.redis.zcard(ledger.keys.rate_window(SF)) == 1  # the read's place
    queries = len([e for e in env.salesforce.log() if e["method"] == "GET"])
    other = hubspot_listing("2026-12-04T10:00:01.000Z", email="grace@example.com")
    with pytest.raises(
        Deferred, match="the rate limit of connection 'salesforce' has no room now"
    ) as waited:
        env.deliver("hubspot-to-salesforce", other)
    assert 50 < waited.value.recheck_seconds <= 60
    assert len([e for e in env.salesforce.log() if e["method"] == "GET"]) == queries
    env.rt.close()


def test_crmhub_pairs_show_says_what_a_pair_knows_of_a_record(env: Env) -> None:
    """An operator asks why a change did or did not sync: the twins' ids, and per field what
    each side holds, when it changed, where, and when the hub wrote it."""
    env.deliver("hubspot-to-salesforce", hubspot_listing("2026-12-04T10:00:00.100Z"))
    (row,) = env.salesforce.records("Contact")

    def run(*args: str) -> Any:
        obj = CliContext(_settings=env.rt.settings, _ledger=env.rt.ledger)
        return CliRunner().invoke(main, ["pairs", "show", *args], obj=obj)

    shown = run("marketing-contacts", " Ada@Example.COM ", "--json")  # as the pair keys it
    assert shown.exit_code == 0, shown.output
    out = json.loads(shown.output)
    assert out["record"] == "ada@example.com" and out["known"] is True
    assert out["ids"] == {HS: "51", SF: row["Id"]}
    fields = {(f["side"], f["field"]): f for f in out["fields"]}
    first = fields[(SF, "FirstName")]
    assert (first["value"], first["settled_by"]) == ("Ada", HS)
    assert first["stamp"] == "2026-12-04T10:00:00.100Z" and first["hub_wrote_at"]
    assert 0 < out["forgotten_in_seconds"] <= 90 * 86400
    text = run("marketing-contacts", "ada@example.com").output
    assert f"salesforce id: {row['Id']}" in text and "salesforce.FirstName = 'Ada'" in text

    unknown = run("marketing-contacts", "nobody@example.com")
    assert unknown.exit_code == EXIT_NOT_FOUND and "knows nothing of nobody@example.com" in (
        unknown.output
    )
    wrong = run("contacts", "ada@example.com")
    assert wrong.exit_code == EXIT_NOT_FOUND
    assert "no two-way pair named 'contacts'" in wrong.output
    assert "(pairs: marketing-contacts)" in wrong.output
