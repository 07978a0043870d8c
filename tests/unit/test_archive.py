"""Hot and cold storage (core/archive/, core/ledger/cold.py): events done for good leave Redis
for the archive once their hot retention has passed, in batches, written to the archive before
Redis lets go of them; reads find an event in either store and say which; a person's events
are erased from both. Every test runs against both archives (SQLite and PostgreSQL,
tests/archives.py) with the ledger on fakeredis (its Lua runtime)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest
from conftest import crmhub, hub_ledger, make_settings, text

from core.archive import Archive, EventQuery, open_archive
from core.archive.emails import emails_in
from core.archive.erasure import purge_email
from core.archive.lookup import find_event, list_events
from core.archive.migrations import LATEST, migrate, schema_version
from core.archive.mover import archive_lag_seconds, archive_pass
from core.errors import ConfigError
from core.ledger import Ledger, NewDelivery, NewEvent
from core.ledger.search import ENTRY, event_id_of_entry, term_digest
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory

T0 = 1_750_000_000.0
DAY = 86400


class Hub:
    """A ledger on fakeredis and an archive, with the steps the tests take."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = fakeredis.FakeRedis()
        self.ledger: Ledger = hub_ledger(settings, self.redis)
        self.archive: Archive = open_archive(settings)
        self.n = 0

    def accept(
        self,
        email: str = "ada@example.com",
        *,
        now: float = T0,
        deliveries: int = 1,
        source: str = "stripe",
        type_: str = "customer.created",
        notes: str = "",
    ) -> tuple[str, list[str]]:
        self.n += 1
        ids = [f"dlv_{self.n:04d}_{i}" for i in range(deliveries)]
        event = NewEvent(
            id=f"evt_{self.n:04d}",
            source=source,
            type=type_,
            external_id=f"ext_{self.n}",
            received_at=now,
            occurred_at=None,
            headers={"Content-Type": "application/json"},
            body=json.dumps(
                {
                    "n": self.n,
                    "data": {"object": {"email": email, **({"notes": notes} if notes else {})}},
                }
            ),
            deliveries=tuple(
                NewDelivery(i, "contacts", "crm", "contacts", f"crm:contacts:{i}") for i in ids
            ),
        )
        [accepted] = self.ledger.accept([event], now)
        return accepted.event_id, ids

    def finish(self, delivery_id: str, outcome: str, now: float = T0) -> None:
        claim = self.ledger.claim(delivery_id, token="t", now=now, lease_seconds=60)
        assert claim.status == "claimed"
        self.ledger.finish(
            delivery_id,
            token="t",
            now=now,
            outcome=AttemptOutcome(outcome),
            attempt={"at": now, "outcome": outcome},
            category=DeadCategory.REJECTED_BY_TARGET if outcome == "dead" else None,
            error="422 no" if outcome == "dead" else "",
        )

    def delivered_event(self, email: str = "ada@example.com", now: float = T0) -> str:
        event_id, [delivery_id] = self.accept(email, now=now)
        self.finish(delivery_id, "delivered", now=now)
        return event_id

    def find(self, event_id: str) -> dict[str, Any]:
        """The event from either store (it must be in one)."""
        found = find_event(self.ledger, self.archive, event_id)
        assert found is not None, event_id
        return found

    def run(self, now: float) -> Any:
        return archive_pass(self.ledger, self.archive, self.settings, clock=lambda: now)

    def hot_keys(self) -> set[str]:
        return {text(k) for k in self.redis.keys("*")}

    def search_index(self) -> list[str]:
        """The index's entries as text: `{term digest}\0{event id}` (those written before:
        `{term}\0{ms}\0{event id}`)."""
        entries = cast(list[bytes], self.redis.zrange(self.ledger.keys.search(), 0, -1))
        return [
            f"{e[1:9].hex()}\x00{event_id_of_entry(e)}" if e[:1] == ENTRY else text(e)
            for e in entries
        ]


def archive_settings(directory: Path, archive_url: str, **env: str) -> Settings:
    """A hub with an empty configuration, its archive at `archive_url`."""
    config = directory / "crmhub.yaml"
    config.write_text("sources: {}\nconnections: {}\nmappings: {}\n")
    return make_settings(config, "hub", CRMHUB_ARCHIVE_URL=archive_url, **env)


@pytest.fixture
def settings(tmp_path: Path, archive_database_url: str) -> Settings:
    return archive_settings(tmp_path, archive_database_url)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    h = Hub(settings)
    yield h
    h.archive.close()


# the move -------------------------------------------------------------------------------
def test_done_events_leave_redis_for_the_archive_once_their_retention_passed(hub: Hub) -> None:
    event_id = hub.delivered_event()
    assert any(event_id in entry for entry in hub.search_index())
    assert hub.run(T0 + DAY - 1).moved == 0  # still within CRMHUB_HOT_RETENTION_SECONDS
    assert hub.find(event_id)["archived"] is False

    result = hub.run(T0 + DAY + 1)
    assert (result.moved, result.written) == (1, 1)
    assert not any(event_id in k or "dlv_0001" in k for k in hub.hot_keys())
    assert not any(event_id in entry for entry in hub.search_index())
    assert hub.ledger.done_count() == 0
    shown = find_event(hub.ledger, hub.archive, event_id)
    assert shown is not None and shown["archived"] is True
    assert shown["body"]["data"]["object"]["email"] == "ada@example.com"
    [delivery] = shown["deliveries"]
    assert delivery["state"] == "delivered"
    assert [a["outcome"] for a in delivery["attempt_history"]] == ["delivered"]
    assert hub.archive.count() == 1


#: a body long and repetitive enough that Redis holds it compressed (core/ledger/bodies.py)
NOTES = "Renewal call booked with procurement; invoices to head office. " * 16


def test_a_long_body_is_held_compressed_and_every_read_gives_back_the_text_received(
    hub: Hub,
) -> None:
    event_id, [delivery_id] = hub.accept("grace@example.com", notes=NOTES)
    key = hub.ledger.keys.event(event_id)
    stored = {text(k) for k in hub.redis.hkeys(key)}
    assert "bodyz" in stored and "body" not in stored and "terms" not in stored
    received = hub.ledger.raw_event(event_id)["body"]
    assert json.loads(received)["data"]["object"]["notes"] == NOTES
    assert len(hub.redis.hget(key, "bodyz") or b"") < len(received) / 2
    claim = hub.ledger.claim(delivery_id, token="t", now=T0, lease_seconds=60, with_data=True)
    assert claim.event["body"] == received  # what the worker maps
    [row] = hub.ledger.event_fields([event_id], ("id", "body"))
    assert row["body"] == received  # what the hot email search and erasure read
    assert hub.find(event_id)["body"]["data"]["object"]["notes"] == NOTES
    hub.ledger.finish(delivery_id, token="t", now=T0, outcome=AttemptOutcome.DELIVERED, attempt={})
    assert [e for e in hub.search_index() if event_id in e]  # sender id and email
    hub.run(T0 + DAY + 1)
    # its terms were found again from the compressed body: no entry outlives it
    assert not [e for e in hub.search_index() if event_id in e]
    archived = hub.find(event_id)
    assert archived["archived"] is True
    assert archived["body"]["data"]["object"]["notes"] == NOTES


def test_terms_an_event_recorded_before_kept_on_its_hash_leave_the_index_with_it(
    hub: Hub,
) -> None:
    event_id = hub.delivered_event()
    received = hub.ledger.raw_event(event_id)["received_at"]
    hub.redis.hset(hub.ledger.keys.event(event_id), "terms", "old-term")
    hub.redis.zadd(hub.ledger.keys.search(), {f"old-term\x00{int(received):013d}\x00{event_id}": 0})
    hub.run(T0 + DAY + 1)
    assert not [e for e in hub.search_index() if event_id in e]


def test_an_archived_event_reads_as_it_did_in_redis_plus_where_it_is(hub: Hub) -> None:
    event_id = hub.delivered_event()
    hot = find_event(hub.ledger, hub.archive, event_id)
    hub.run(T0 + DAY + 1)
    cold = find_event(hub.ledger, hub.archive, event_id)
    assert hot is not None and cold is not None
    same = {k for k in hot if k not in ("archived", "deliveries")}
    assert {k: cold[k] for k in same} == {k: hot[k] for k in same}
    assert [
        {k: v for k, v in d.items() if k not in ("attempt_history", "actions")}
        for d in cold["deliveries"]
    ] == hot["deliveries"]


def test_only_events_done_for_good_move_and_a_dead_letter_keeps_its_event_hot(hub: Hub) -> None:
    waiting, _ = hub.accept()
    dead, [dead_delivery] = hub.accept()
    half, [first, _second] = hub.accept(deliveries=2)
    hub.finish(dead_delivery, "dead")
    hub.finish(first, "delivered")
    unrouted, _ = hub.accept(deliveries=0)
    assert hub.run(T0 + 30 * DAY).moved == 1  # the unrouted one only
    for event_id in (waiting, dead, half):
        assert hub.find(event_id)["archived"] is False
    assert hub.find(unrouted)["archived"] is True


def test_a_discarded_dead_letter_is_archived_with_the_reason(hub: Hub) -> None:
    event_id, [delivery_id] = hub.accept()
    hub.finish(delivery_id, "dead")
    from core import operations

    operations.discard(hub.ledger, [delivery_id], reason="customer left", by="op", now=T0 + 5)
    assert hub.run(T0 + 5 + DAY + 1).moved == 1
    shown = hub.find(event_id)
    [delivery] = shown["deliveries"]
    assert delivery["state"] == "discarded"
    assert delivery["actions"][-1]["reason"] == "customer left"
    with hub.archive.db.transaction(write=False) as tx:
        rows = tx.execute("SELECT discard_reason FROM archived_deliveries")
    assert rows == [("customer left",)]


def test_writing_a_batch_twice_leaves_the_same_rows(hub: Hub) -> None:
    """What a crash between the archive write and the eviction leads to: the next pass writes
    the same events again."""
    for _ in range(3):
        hub.delivered_event()
    batch = hub.ledger.terminal_batch(T0 + DAY, 10)
    assert hub.archive.write(batch, T0 + DAY) == 3
    assert hub.archive.write(batch, T0 + DAY) == 0
    assert hub.archive.count() == 3
    with hub.archive.db.transaction(write=False) as tx:
        counts = [
            tx.execute(f"SELECT COUNT(*) FROM {t}")[0][0]
            for t in ("archived_events", "archived_deliveries", "archived_event_emails")
        ]
    assert counts == [3, 3, 3]
    assert hub.ledger.evict(batch, T0 + DAY) == 3
    assert hub.ledger.evict(batch, T0 + DAY) == 0  # already gone: nothing


def test_an_event_that_changed_after_it_was_read_is_not_evicted(hub: Hub) -> None:
    event_id = hub.delivered_event()
    batch = hub.ledger.terminal_batch(T0 + DAY, 10)
    hub.redis.hset(f"hub:dlv:{batch[0].deliveries[0].fields['id']}", "updated_at", "1")
    assert hub.ledger.evict(batch, T0 + DAY) == 0
    assert hub.find(event_id)["archived"] is False


def test_the_archiver_works_in_batches_of_the_configured_size(
    tmp_path: Path, archive_database_url: str
) -> None:
    settings = archive_settings(tmp_path, archive_database_url, CRMHUB_ARCHIVE_BATCH_SIZE="2")
    hub = Hub(settings)
    for _ in range(5):
        hub.delivered_event()
    sizes: list[int] = []
    read = hub.ledger.terminal_batch

    def spy(done_before: float, limit: int) -> Any:
        batch = read(done_before, limit)
        sizes.append(len(batch))
        return batch

    hub.ledger.terminal_batch = spy  # type: ignore[method-assign]
    assert hub.run(T0 + DAY + 1).moved == 5
    assert sizes == [2, 2, 1]
    hub.archive.close()


def test_hot_retention_is_the_setting(tmp_path: Path, archive_database_url: str) -> None:
    settings = archive_settings(tmp_path, archive_database_url, CRMHUB_HOT_RETENTION_SECONDS="60")
    hub = Hub(settings)
    hub.delivered_event()
    assert hub.run(T0 + 59).moved == 0
    assert archive_lag_seconds(hub.ledger, settings.hot_retention_seconds, now=T0 + 59) == 0
    assert archive_lag_seconds(hub.ledger, settings.hot_retention_seconds, now=T0 + 75) == 15
    assert hub.run(T0 + 61).moved == 1
    assert archive_lag_seconds(hub.ledger, settings.hot_retention_seconds, now=T0 + 75) == 0
    hub.archive.close()


def test_archive_retention_deletes_old_events_in_batches(
    tmp_path: Path, archive_database_url: str
) -> None:
    settings = archive_settings(
        tmp_path,
        archive_database_url,
        CRMHUB_ARCHIVE_RETENTION_DAYS="7",
        CRMHUB_ARCHIVE_BATCH_SIZE="2",
    )
    hub = Hub(settings)
    old = [hub.delivered_event(now=T0) for _ in range(3)]
    recent = hub.delivered_event(now=T0 + 5 * DAY)
    assert hub.run(T0 + 6 * DAY + 1).moved == 4
    result = hub.run(T0 + 7 * DAY + 1)  # the first three are 7 days old now
    assert result.expired == 3
    assert all(find_event(hub.ledger, hub.archive, e) is None for e in old)
    assert hub.find(recent)["archived"] is True
    assert hub.archive.count() == 1
    hub.archive.close()


def test_another_archiver_holding_the_lock_means_this_pass_does_nothing(hub: Hub) -> None:
    hub.delivered_event()
    with hub.ledger.archive_lock(30) as lock:
        assert lock is not None
        assert hub.run(T0 + DAY + 1).skipped
    assert hub.run(T0 + DAY + 1).moved == 1


# reads from both stores -----------------------------------------------------------------
def test_lists_merge_both_stores_newest_first_and_say_which(hub: Hub) -> None:
    old = hub.delivered_event("old@example.com", now=T0)
    hub.run(T0 + DAY + 1)
    new = hub.delivered_event("new@example.com", now=T0 + DAY + 2)
    rows = list_events(hub.ledger, hub.archive, EventQuery(), limit=10)
    assert [(r["id"], r["archived"]) for r in rows] == [(new, False), (old, True)]
    assert rows[1]["deliveries"] == 1 and rows[1]["state"] == "recorded"
    assert [r["id"] for r in list_events(hub.ledger, hub.archive, EventQuery(), limit=1)] == [new]
    assert [
        r["id"] for r in list_events(hub.ledger, hub.archive, EventQuery(), limit=1, offset=1)
    ] == [old]


def test_an_event_in_both_stores_for_a_moment_is_listed_once(hub: Hub) -> None:
    event_id = hub.delivered_event()
    hub.archive.write(hub.ledger.terminal_batch(T0 + DAY, 10), T0 + DAY)  # no evict
    rows = list_events(hub.ledger, hub.archive, EventQuery(), limit=10)
    assert [(r["id"], r["archived"]) for r in rows] == [(event_id, False)]


@pytest.mark.parametrize("archived", [False, True], ids=["hot", "archived"])
def test_search_by_each_filter_finds_the_same_in_either_store(hub: Hub, archived: bool) -> None:
    a = hub.delivered_event("Ada@Example.com", now=T0)
    b, [dead] = hub.accept("grace@example.com", now=T0 + 10, source="forms", type_="form.sent")
    hub.finish(dead, "dead")
    from core import operations

    operations.discard(hub.ledger, [dead], reason="test", by="op", now=T0 + 11)
    c = hub.delivered_event("linus@example.com", now=T0 + 20)
    if archived:
        assert hub.run(T0 + 30 + DAY).moved == 3

    def ids(**filters: Any) -> list[str]:
        rows = list_events(hub.ledger, hub.archive, EventQuery(**filters), limit=10)
        assert all(r["archived"] is archived for r in rows)
        return [r["id"] for r in rows]

    assert ids() == [c, b, a]
    assert ids(id=b) == [b]
    assert ids(external_id="ext_1") == [a]
    assert ids(source="forms") == [b]
    assert ids(type="customer.created") == [c, a]
    assert ids(state="discarded") == [b]
    assert ids(state="delivered") == [c, a]
    assert ids(state="recorded") == [c, b, a]
    assert ids(since=T0 + 5) == [c, b]
    assert ids(until=T0 + 15) == [b, a]
    assert ids(email="ada@example.com") == [a]
    assert ids(email=" ADA@example.COM ") == [a]
    assert ids(email="nobody@example.com") == []


def test_emails_are_found_anywhere_in_the_body_normalized() -> None:
    body = json.dumps({"email": " Ada@Example.com", "cc": ["b.c+x@mail.example.org"], "n": "a@b"})
    assert emails_in(body) == ["ada@example.com", "b.c+x@mail.example.org"]


# erasure --------------------------------------------------------------------------------
def test_purge_erases_a_persons_events_from_both_stores_and_logs_it(hub: Hub) -> None:
    archived = hub.delivered_event("ada@example.com", now=T0)
    hub.run(T0 + DAY + 1)
    hot = hub.delivered_event("ada@example.com", now=T0 + DAY + 2)
    # (held compressed: its search terms are found again from the compressed body)
    dead_event, [dead] = hub.accept("ADA@example.com", now=T0 + DAY + 3, notes=NOTES)
    hub.finish(dead, "dead", now=T0 + DAY + 3)
    on_its_way, _ = hub.accept("ada@example.com", now=T0 + DAY + 4)
    other = hub.delivered_event("grace@example.com", now=T0 + DAY + 5)

    erasure = purge_email(hub.ledger, hub.archive, "Ada@Example.com", by="op", now=T0 + DAY + 9)
    assert sorted(erasure.hot) == sorted([hot, dead_event])
    assert erasure.archived == [archived]
    assert erasure.kept == {on_its_way: "pending"}
    for event_id in (archived, hot, dead_event):
        assert find_event(hub.ledger, hub.archive, event_id) is None
    assert find_event(hub.ledger, hub.archive, other) is not None
    assert hub.ledger.dead_ids() == []  # the dead letter went with its event
    assert hub.ledger.connection_state("crm")["counts"].get("dead") == 0
    assert not any(dead in k or hot in k for k in hub.hot_keys())
    [entry], _ = hub.ledger.actions.page(limit=10, cursor=None)
    assert entry["action"] == "purge" and entry["by"] == "op"
    assert "ada@example.com" not in json.dumps(entry).lower()  # a hash, not the address
    assert entry["details"]["erased_archived"] == [archived]
    assert sorted(entry["ids"]) == sorted([hot, dead_event, archived])
    # no key names the address; the search index keeps only the event still on its way
    assert not any("ada@example.com" in k.lower() for k in hub.hot_keys())
    ada = term_digest("ada@example.com")
    found = [e.rsplit("\x00", 1)[-1] for e in hub.search_index() if e.startswith(ada)]
    assert found == [on_its_way]
    assert hub.archive.count() == 0


def test_events_purge_command_reports_and_exits_1_when_some_are_kept(
    hub: Hub, settings: Settings
) -> None:
    hub.delivered_event("ada@example.com")
    hub.accept("ada@example.com")
    result = crmhub(
        settings, "events", "purge", "--email", "ada@example.com", "--yes", ledger=hub.ledger
    )
    assert result.exit_code == 1, result.output
    assert "erased 1 event(s) from Redis and 0 from the archive" in result.output
    assert "kept evt_0002: a delivery is still pending" in result.output


# the commands ---------------------------------------------------------------------------
def test_events_show_and_list_say_where_an_event_is(hub: Hub, settings: Settings) -> None:
    event_id = hub.delivered_event()
    hub.run(T0 + DAY + 1)
    hot_id = hub.delivered_event(now=T0 + DAY + 2)
    shown = crmhub(settings, "events", "show", event_id, "--json", ledger=hub.ledger)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["archived"] is True
    text = crmhub(settings, "events", "show", event_id, ledger=hub.ledger).output
    assert "stored    archive" in text
    listed = crmhub(
        settings, "events", "list", "--email", "ada@example.com", "--json", ledger=hub.ledger
    )
    rows = json.loads(listed.output)["events"]
    assert [(r["id"], r["archived"]) for r in rows] == [(hot_id, False), (event_id, True)]
    missing = crmhub(settings, "events", "show", "evt_nope", ledger=hub.ledger)
    assert missing.exit_code == 4 and "in Redis or the archive" in missing.output


def test_archive_run_and_status_commands(hub: Hub, settings: Settings) -> None:
    hub.delivered_event(now=time.time() - 2 * DAY)  # due for the archive, not past retention
    status = json.loads(crmhub(settings, "archive", "status", "--json", ledger=hub.ledger).output)
    assert status["done_in_redis"] == 1 and status["lag_seconds"] > 0
    run = crmhub(settings, "archive", "run", "--until-caught-up", ledger=hub.ledger)
    assert run.exit_code == 0, run.output
    assert "moved 1 event(s) to the archive (1 new there)" in run.output
    status = json.loads(crmhub(settings, "archive", "status", "--json", ledger=hub.ledger).output)
    assert (status["done_in_redis"], status["archived_events"], status["lag_seconds"]) == (
        0,
        1,
        0,
    )


# the schema -----------------------------------------------------------------------------
def test_migrations_apply_once_in_order_and_the_command_reports_them(
    tmp_path: Path, archive_database_url: str
) -> None:
    settings = archive_settings(tmp_path, archive_database_url)
    first = crmhub(settings, "archive", "migrate", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["applied"] == [1] and json.loads(first.output)["version"] == 1
    again = json.loads(crmhub(settings, "archive", "migrate", "--json").output)
    assert again["applied"] == [] and again["version"] == LATEST
    archive = open_archive(settings)  # what every process does as it opens it
    assert migrate(archive.db) == [] and schema_version(archive.db) == LATEST
    archive.close()


def test_the_default_archive_is_a_sqlite_file_under_the_var_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"CRMHUB_VAR_DIR": str(tmp_path / "v")})
    archive = open_archive(settings)
    assert (tmp_path / "v" / "archive.sqlite3").exists()
    assert archive.count() == 0
    archive.close()


def test_an_archive_url_of_another_kind_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="CRMHUB_ARCHIVE_URL: expected postgresql://"):
        Settings.from_env({"CRMHUB_ARCHIVE_URL": "mysql://u:secret@h/db"})
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CRMHUB_ARCHIVE_URL": "mysql://u:secret@h/db"})
    assert "secret" not in str(caught.value)


# the scheduler ------------------------------------------------------------------------------
def test_the_scheduler_runs_the_archive_pass_on_the_control_queue(
    hub: Hub, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # workers.celery_app builds its app from the environment as it is imported: never the
    # embedded Redis (nothing connects here)
    monkeypatch.setenv("CRMHUB_REDIS_URL", "redis://127.0.0.1:9/0")
    from workers import archiver
    from workers.celery_app import ARCHIVE_INTERVAL_SECONDS, make_celery
    from workers.runtime import WorkerRuntime

    app = make_celery(settings.with_redis("redis://127.0.0.1:9/0"))  # not connected here
    assert app.conf.beat_schedule["archive"]["task"] == "crmhub.archive"
    assert app.conf.beat_schedule["archive"]["schedule"] == ARCHIVE_INTERVAL_SECONDS
    assert app.conf.task_routes["crmhub.archive"] == {"queue": settings.control_queue}

    hub.delivered_event(now=time.time() - 2 * DAY)
    rt = WorkerRuntime(settings=settings, config=None, ledger=hub.ledger)  # type: ignore[arg-type]
    try:
        assert archiver.archive(rt)["moved"] == 1  # what the task runs
        assert archiver.process_archive(rt).count() == 1
    finally:
        archiver.close_archive()


def test_an_archive_that_cannot_be_reached_says_where_and_why() -> None:
    from core.archive import Database
    from core.errors import ArchiveUnavailable

    for url in ("sqlite:////proc/no-such/archive.sqlite3", "postgresql://nobody@127.0.0.1:9/x"):
        db = Database(url)
        unreachable = pytest.raises(ArchiveUnavailable, match=r"the archive \((SQLite|Postgre)")
        with unreachable, db.transaction() as tx:
            tx.execute("SELECT 1")
        db.close()
