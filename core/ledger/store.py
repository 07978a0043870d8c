"""The ledger in Redis: the durable state of every accepted event and every delivery.

Every state change is one Lua script (core/ledger/*.lua, assembled by core.ledger.scripts; each
script's header states its request and its reply, core.ledger.replies reads the replies by
name), so a delivery is at every moment in exactly one state and every publish to the work
queue happens in the same atomic step as the state change that calls for it. Every key is
built by core.ledger.keys. Reads are core.ledger.reads; Redis errors are translated once, at
this edge (core.ledger.translate), into LedgerUnavailable.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from core import redis_client
from core.amqp import AmqpPublisher
from core.errors import ReplicasUnconfirmed
from core.ledger import event_fields, replies
from core.ledger.actions import ActionLog
from core.ledger.activity import ActivityReads
from core.ledger.alert_store import AlertStore
from core.ledger.bodies import packed
from core.ledger.bulk import BulkOperations
from core.ledger.cold import LedgerCold
from core.ledger.dead_pages import DeadLetterPages
from core.ledger.deliveries import folded_id, in_record_key
from core.ledger.generations import ConfigGenerations
from core.ledger.keys import LATENCY_BUCKETS, LedgerKeys, StatsHash, dedupe_digest
from core.ledger.lane import ScriptLane
from core.ledger.locks import single_flight
from core.ledger.memo import Memo
from core.ledger.model import NewDelivery, NewEvent
from core.ledger.operator_writes import OperatorWrites
from core.ledger.outbox import AlertOutbox
from core.ledger.pages import BacklogReads
from core.ledger.polls import PollStore
from core.ledger.rates import RateSpec, rate_params
from core.ledger.reads import LedgerReads
from core.ledger.relay import PUBLISHING_SCRIPTS, HintRelay
from core.ledger.replies import Accepted, BatchClaimed, Claim, Finish, Swept
from core.ledger.scripts import SCRIPTS, load_script
from core.ledger.search import indexed_terms, term_digest
from core.ledger.tokens import TokenStore
from core.ledger.translate import translate_redis_errors
from core.queue import HintQueue
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory


def open_ledger(settings: Settings, client: redis.Redis | None = None) -> Ledger:
    """The hub's ledger as every process opens it (receiver, worker, CLI): its Redis (or
    `client`), key prefix, work queue and dedupe window from the settings."""
    client = client or redis_client.connect(redis_client.resolve_redis_url(settings))
    amqp = settings.broker_is_amqp
    ledger = Ledger(
        client,
        prefix=settings.key_prefix,
        queue=HintQueue(settings.celery_queue, settings.celery_keyprefix, outbox=amqp),
        dedupe_ttl_seconds=settings.dedupe_ttl_seconds,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )
    if amqp:
        publisher = AmqpPublisher(str(settings.broker_url), settings.celery_queue)
        ledger.relay = HintRelay(client, ledger.queue.key, publisher)
    return ledger


#: a connection's rate limit as a claim takes it: (requests, per_seconds) or
#: (requests, per_seconds, burst); a burst of None or 0 is none
class Ledger(LedgerReads, DeadLetterPages, BacklogReads, OperatorWrites, LedgerCold):
    """Everything the hub keeps in Redis, under one key prefix: events and deliveries (the
    methods here and in LedgerReads), and beside them the OAuth tokens (`tokens`), the alert
    outbox (`alerts`), the alert states (`alerting`) and the configuration generation
    (`generations`)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        queue: HintQueue,
        dedupe_ttl_seconds: int = 30 * 24 * 3600,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.redis = client
        #: an accept is confirmed by this many replicas before the receiver answers 2xx
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.prefix = prefix
        self.keys = LedgerKeys(prefix)
        self.queue = queue
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self._scripts = {
            name: client.register_script(load_script(name, queue.template)) for name in SCRIPTS
        }
        self._lane = ScriptLane(client)  # scripts run on a connection of their own
        self.tokens = TokenStore(client, self.keys)
        self.alerts = AlertOutbox(client, self.keys)
        self.alerting = AlertStore(client, self.keys, self.alerts)
        self.activity = ActivityReads(client, self.keys)
        self.generations = ConfigGenerations(client, self.keys)
        self.memo = Memo(client, self.keys)
        self.actions = ActionLog(client, self.keys)  # the operator action log
        self.bulk = BulkOperations(client, self.keys)  # bulk replays and discards
        self.polls = PollStore(client, self.keys, self._run)  # polling sources, backfills
        #: with an AMQP broker, what takes the scripts' hints from the outbox to it
        self.relay: HintRelay | None = None

    def read_succeeded(self, connection: str, now: float) -> None:
        """A connection answered a read (a mapping's `fetch:`): a success of that connection
        as a delivery's is (its status, the went_quiet and connection_paused alerts), for a
        connection that is only ever read from."""
        with translate_redis_errors():
            self.redis.hset(self.keys.last(connection), "success_at", int(now * 1000))

    def ping(self) -> None:
        """Redis answers on the scripts' own connection, the one every accept goes through
        (the shared pool answering says nothing about it)."""
        with translate_redis_errors():
            self._lane.ping()

    def _run(self, script: str, now: float, *raw: str | bytes, **request: Any) -> Any:
        """Run a ledger script: ARGV[1] is the JSON request, `raw` strings follow as is."""
        payload = {
            "prefix": self.prefix,
            "now": int(now * 1000),
            "queue": self.queue.key,
            **request,
        }
        args = [json.dumps(payload, separators=(",", ":")), *raw]
        with translate_redis_errors():
            if script == "accept" and self.wait_replicas:
                reply, confirmed = self._lane.run_and_wait(
                    self._scripts[script], args, self.wait_replicas, self.wait_timeout_ms
                )
                if confirmed < self.wait_replicas:
                    raise ReplicasUnconfirmed(confirmed, self.wait_replicas)
            else:
                reply = self._lane(self._scripts[script], args)
        if self.relay is not None and script in PUBLISHING_SCRIPTS:
            self.relay.relay_quietly()  # after the change is made: RabbitMQ gets its hints
        return reply

    # the receiver ---------------------------------------------------------------------
    def accept(self, events: Sequence[NewEvent], now: float) -> list[Accepted]:
        """Take events and their deliveries into the ledger (publishing each) atomically.

        A repeat of an already accepted (source, external id) stores nothing and reports the
        first event's id. Raises LedgerUnavailable if Redis cannot take the write.
        """
        now_ms = int(now * 1000)
        # bodies and headers travel as plain arguments: no escaping into (and decoding out
        # of) the JSON request, which is the bulk of the bytes
        raw: list[str | bytes] = []
        payloads = []
        for ev in events:
            body_field, body, headers = packed(
                ev.body, json.dumps(ev.headers, separators=(",", ":"))
            )
            raw += (body, headers or "")
            payloads.append(
                self._event_payload(ev, now_ms)
                | {"body_field": body_field, "headers_apart": headers is not None}
            )
        return replies.accepted(
            self._run(
                "accept",
                now,
                *raw,
                ttl=self.dedupe_ttl_seconds,
                events=payloads,
            )
        )

    def _event_payload(self, ev: NewEvent, now_ms: int) -> dict[str, Any]:
        fields = [
            "source",
            ev.source,
            "type",
            ev.type or "",
            "external_id",
            ev.external_id,
            "received_at",
            int(ev.received_at * 1000),
            "occurred_at",
            ev.occurred_at or "",
            # (its id, and mostly its state and deliveries, follow from the rest: not written)
            *event_fields.written(ev.id, ev.state, [d.id for d in ev.deliveries]),
        ]
        return {
            "dedupe": self.keys.dedupe(dedupe_digest(ev.source, ev.external_id)),
            # one written before this layout, honoured until it expires
            "legacy_dedupe": self.keys.legacy_dedupe(ev.source, ev.external_id),
            "id": ev.id,
            "source": ev.source,
            "received": int(ev.received_at * 1000),
            "fields": fields,
            # not kept on the event: found again from its body when it leaves
            # (core/ledger/cold.py terms_of)
            "digests": [term_digest(t) for t in indexed_terms(ev.body)],
            **(
                {"echo": {"ref": ev.echo[0], "pairs": [list(p) for p in ev.echo[1]]}}
                if ev.echo
                else {}
            ),
            "deliveries": [
                self._delivery_payload(ev, d, now_ms, folded=n == 0 and d.id == folded_id(ev.id))
                for n, d in enumerate(ev.deliveries)
            ],
        }

    @staticmethod
    def _delivery_payload(
        ev: NewEvent, d: NewDelivery, now_ms: int, *, folded: bool
    ) -> dict[str, Any]:
        """A delivery as accept.lua writes it; one `folded` into its event's hash has no `id`,
        `event_id` or `created_at` stored (they follow from its id and its event's:
        core/ledger/deliveries.py)."""
        # (attempts are 0 until the first; a folded one's created_at is its event's received_at)
        ids = () if folded else ("id", d.id, "event_id", ev.id, "created_at", now_ms)
        # a folded one's connection and object are read from its record key when it begins
        # with them (core/ledger/deliveries.py in_record_key)
        implied = folded and in_record_key(d.record_key) == {
            "connection": d.connection,
            "object": d.object,
        }
        where = () if implied else ("connection", d.connection, "object", d.object)
        return {
            "id": d.id,
            "connection": d.connection,
            "object": d.object,
            "rk": d.record_key,
            "folded": folded,
            "fields": [
                *ids,
                "mapping",
                d.mapping,
                *where,
                *(("occurred_ms", d.occurred_ms) if d.occurred_ms is not None else ()),
            ],
        }

    # the worker -----------------------------------------------------------------------
    def claim(
        self,
        delivery_id: str,
        *,
        token: str,
        now: float,
        lease_seconds: float,
        rates: Mapping[str, RateSpec] | None = None,
        max_wait_seconds: float = 1.0,
        with_data: bool = False,
    ) -> Claim:
        """Try to take a delivery for one attempt.

        `rates`: (requests, per_seconds[, burst]) by connection, for those with a rate
        limit (the delivery's own connection picks its entry). `with_data`: also return the
        delivery as the claim left it and, when claimed, its event, read in the same step (a
        worker then makes no reads of its own).
        """
        request: dict[str, Any] = {
            "id": delivery_id,
            "token": token,
            "lease_ms": int(lease_seconds * 1000),
            "max_wait_ms": int(max_wait_seconds * 1000),
            "with_data": with_data,
        }
        if rates:
            request["rates"] = {conn: rate_params(spec) for conn, spec in rates.items()}
        return replies.claim(self._run("claim", now, **request), with_data=with_data)

    def claim_batch(
        self, connection: str, obj: str, *, token: str, now: float, lease_seconds: float, limit: int
    ) -> list[BatchClaimed]:
        """Claim up to `limit` more published deliveries of (connection, object) to send in
        one batch request. Per-record order still holds."""
        if limit <= 0:
            return []
        return replies.batch_claimed(
            self._run(
                "claim_batch",
                now,
                conn=connection,
                object=obj,
                limit=limit,
                token=token,
                lease_ms=int(lease_seconds * 1000),
            )
        )

    def claim_next(
        self,
        connection: str,
        objects: Sequence[str],
        *,
        token: str,
        now: float,
        lease_seconds: float,
        rates: Mapping[str, RateSpec] | None = None,
        scan: int = 8,
    ) -> Claim:
        """The drain: claim the oldest published delivery of `connection` (its ready sets for
        `objects`) as its own message would (claim.lua, with its delivery and event), or say
        why the drain stops there (claim_next.lua). Nothing changes for the others."""
        request: dict[str, Any] = {
            "conn": connection,
            "objects": list(objects),
            "token": token,
            "lease_ms": int(lease_seconds * 1000),
            "scan": scan,
        }
        if rates and connection in rates:
            request["rates"] = {connection: rate_params(rates[connection])}
        return replies.next_claimed(self._run("claim_next", now, **request))

    def finish(
        self,
        delivery_id: str,
        *,
        token: str,
        now: float,
        outcome: AttemptOutcome,
        attempt: dict[str, Any],
        due: float | None = None,
        error: str = "",
        category: DeadCategory | None = None,
        dead_letter: dict[str, Any] | None = None,
        transient: bool = False,
        cooldown_until: float | None = None,
        pause: dict[str, Any] | None = None,
        breaker: tuple[int, float, float] = (5, 5.0, 300.0),
    ) -> Finish:
        """Apply an attempt's outcome, if the lease is still ours (else Finish.lost).
        `dead_letter`: with a dead outcome, what an operator needs to fix it."""
        threshold, open_s, max_open_s = breaker
        return replies.finished(
            self._run(
                "finish",
                now,
                id=delivery_id,
                token=token,
                outcome=outcome,
                attempt=json.dumps(attempt, separators=(",", ":"), default=str),
                due=int((due or now) * 1000),
                error=error[:2000],
                category=category or "",
                dead_letter=json.dumps(dead_letter, default=str) if dead_letter is not None else "",
                transient=transient,
                cooldown_until=int((cooldown_until or 0) * 1000),
                pause=json.dumps(pause or {}),
                applied_ttl=self.dedupe_ttl_seconds,
                buckets=LATENCY_BUCKETS,
                breaker={
                    "threshold": threshold,
                    "open_ms": int(open_s * 1000),
                    "max_open_ms": int(max_open_s * 1000),
                },
            )
        )

    # the scheduler --------------------------------------------------------------------
    def sweep_lock(self, ttl_seconds: float) -> contextlib.AbstractContextManager[bool]:
        """Single-flight sweeping across every host: yields whether this caller holds the
        lock (for at most `ttl_seconds`, so a sweeper that dies never blocks the others)."""
        return single_flight(self.redis, self.keys.sweep_lock(), ttl_seconds)

    def sweep(self, now: float, *, republish_after_seconds: float, limit: int = 1000) -> Swept:
        lost = {
            "at": now,
            "outcome": AttemptOutcome.LEASE_EXPIRED,
            "error": "the worker holding this delivery stopped before reporting back",
        }
        return replies.swept(
            self._run(
                "sweep",
                now,
                limit=limit,
                stale_before=int((now - republish_after_seconds) * 1000),
                lost_attempt=json.dumps(lost),
            )
        )

    def add_stats(self, counts: Mapping[tuple[StatsHash, str], int]) -> None:
        """Add to the hub-wide counters: {(name, field): n} into the `stats:<name>` hashes,
        all or none (MULTI), so a caller that keeps its counts on failure never adds twice."""
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            for (name, field), n in counts.items():
                pipe.hincrby(self.keys.stats(name), field, n)
            pipe.execute()

    # operators ------------------------------------------------------------------------
    def remember_writes(
        self, refs: Sequence[str], values: Mapping[str, str], window_seconds: int
    ) -> None:
        """Two-way sync: what the hub just wrote to a record, under each of its refs."""
        if not values:
            return
        with translate_redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for ref in refs:
                pipe.hset(self.keys.echo(ref), mapping=dict(values))  # type: ignore[arg-type]
                pipe.expire(self.keys.echo(ref), window_seconds)
            pipe.execute()
