"""Every Redis key the ledger owns, written once.

LAYOUT is the table: each kind's pattern (under the hub's key prefix), its Redis type and what
it holds. LedgerKeys builds them in Python, one method per kind; the scripts name them the same
way (`delivery_key(id)`), and core/ledger/scripts.py expands each such call from the same
table when it assembles a script; common.lua's header lists the same layout for whoever reads
the scripts (tests/unit/test_ledger_contract.py checks all three agree). Nothing outside
core.ledger builds one of these keys.

The strings are data on disk that running installs have: a pattern never changes.
Not in the map: the work queue's list (kombu's, `<CRMHUB_KEY_PREFIX>:q:<queue>`; core.queue),
which the scripts publish to, and kombu's own keys beside it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from core.errors import LedgerScriptError


class StatsHash(StrEnum):
    """The hub-wide counters (`stats:<name>`), each field a `|`-joined label set -> count."""

    WEBHOOKS = "webhooks"  # "source|outcome" (WebhookOutcome)
    ATTEMPTS = "attempts"  # "connection|outcome" (AttemptOutcome)
    ANSWERS = "answers"  # "route|status class|source": every answer of the receivers
    ALERTS = "alerts"  # "sink|outcome" (sent, failed, given_up): alert notifications
    #: "connection|le" (a bucket's upper bound in s, LATENCY_BUCKETS; not cumulative) and
    #: "connection|sum_ms": receipt-to-write latency of delivered deliveries
    LATENCY = "latency"


#: the receipt-to-write latency histogram's buckets (s): finish.lua counts each delivered
#: delivery in the first one it fits (the last is +Inf)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class KeyKind:
    name: str  # LedgerKeys' method; `<name>_key` in Lua
    pattern: str  # under "<prefix>:", with {placeholders} for the parts that vary
    type: str  # the Redis type
    holds: str
    lua: bool = True  # the scripts build it (else only Python does)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.pattern))


LAYOUT: tuple[KeyKind, ...] = (
    # events
    KeyKind(
        "dedupe",
        "dd:{digest}",
        "string",
        "the first event's id for a sender's event id (one of ours, `evt_` + 24 hex digits, "
        "as its 12 bytes: common.lua id_bytes), named by dedupe_digest(source, external_id); "
        "expires after the dedupe window",
        lua=False,
    ),  # built by Python into the accept request
    KeyKind(
        "legacy_dedupe",
        "dedupe:{source}:{external_id}",
        "string",
        "a dedupe key as written before (named by the sender's id); accept still honours one "
        "until it expires",
        lua=False,
    ),
    KeyKind(
        "event",
        "evt:{id}",
        "hash",
        "an accepted event: source, type, external_id, received_at, occurred_at, state "
        "(EventState) and deliveries (ids, comma-separated) unless they follow from the rest "
        "(core/ledger/event_fields.py), body (as received) and headers, or "
        "bodyz (both, compressed, when that saves: core/ledger/bodies.py); its first "
        "delivery's fields, each name behind FOLD (core/ledger/deliveries.py); events "
        "recorded before may hold terms (their search terms, one per line)",
    ),
    KeyKind("events", "events", "zset", "every event id, by received_at (ms)"),
    KeyKind(
        "source_events",
        "events:src:{source}",
        "zset",
        "one source's event ids, by received_at (ms)",
    ),
    KeyKind(
        "echo",
        "echo:{ref}",
        "hash",
        "field -> value the hub last wrote to a CRM record (two-way sync); expires with "
        "the echo window",
    ),
    KeyKind(
        "agreed",
        "agreed:{pair}:{record}",
        "hash",
        "what a two-way pair's sides last agreed on for one record (core/ledger/agreed.py): "
        "per side and field the value, its stamp and the side that settled it, the twins' "
        "ids; expires keep_days after its last change",
        lua=False,
    ),
    # deliveries
    KeyKind("seq", "seq", "string", "counter: deliveries' arrival order (replays take a new one)"),
    KeyKind(
        "delivery",
        "dlv:{id}",
        "hash",
        "a delivery other than its event's first (those are held in the event's hash: "
        "core/ledger/deliveries.py): state (State), event_id, mapping, connection, object, "
        "rk, seq, attempts, timestamps (ms), lease token, dead_* fields once dead",
    ),
    KeyKind("attempts", "dlv:{id}:attempts", "list", "its attempts, JSON, the last 100"),
    KeyKind("actions", "dlv:{id}:actions", "list", "operators' actions on it, JSON"),
    KeyKind(
        "record_queue",
        "rq:{digest}",
        "zset",
        "the deliveries writing one CRM record, by seq: only the head is sent; named by "
        "record_digest(rk) (common.lua rq_digest), not the record key (~30 B less a record)",
    ),
    KeyKind(
        "legacy_record_queue",
        "rk:{rk}",
        "zset",
        "a record's queue as written before (named by its record key); read until it empties",
    ),
    KeyKind(
        "record_applied",
        "rkmeta:{rk}",
        "hash",
        "applied_ms: the newest source timestamp written to the record (newest_wins); "
        "expires after the dedupe window",
    ),
    KeyKind("inflight_index", "idx:inflight", "zset", "IN_FLIGHT deliveries, by lease expiry"),
    KeyKind("scheduled_index", "idx:scheduled", "zset", "SCHEDULED deliveries, by due time"),
    KeyKind("dead_index", "idx:dead", "zset", "DEAD deliveries, by dead_at"),
    # the operator surface: dead letters by filter, search terms, actions, bulk operations
    KeyKind(
        "dead_by_connection",
        "idx:dead:conn:{connection}",
        "zset",
        "one connection's DEAD deliveries, by dead_at",
    ),
    KeyKind(
        "dead_by_mapping",
        "idx:dead:map:{mapping}",
        "zset",
        "one mapping's DEAD deliveries, by dead_at",
    ),
    KeyKind(
        "dead_by_category",
        "idx:dead:cat:{category}",
        "zset",
        "one DeadCategory's DEAD deliveries, by dead_at",
    ),
    KeyKind(
        "search",
        "search",
        "zset",
        "the search index, one sorted set for every term (so no key names a person), all at "
        "score 0, read by range of member: `{term}\\0{received_at ms, 13 digits}\\0{event id}`; "
        "a term (lowercased) is the sender's event id or an email address in the body",
    ),
    KeyKind(
        "action_log",
        "oplog",
        "stream",
        "the operator action log: entry (JSON: action, by, via, reason, ids, ...), capped",
    ),
    KeyKind(
        "operation",
        "opn:{id}",
        "hash",
        "a bulk replay or discard: action, state, total, done, applied, by, via, reason, "
        "filter, created_at, lease_until",
    ),
    KeyKind("operation_ids", "opn:{id}:ids", "list", "the dead letters a bulk operation takes"),
    KeyKind("operations", "opns", "zset", "bulk operations, by created_at (ms)", lua=False),
    KeyKind(
        "idempotency",
        "idem:{key}",
        "string",
        "the operation an Idempotency-Key header started; expires after a day",
        lua=False,
    ),
    KeyKind(
        "ready",
        "ready:{connection}:{object}",
        "zset",
        "published PENDING deliveries of one connection and object, by publish time (what a "
        "batch may take; what the sweep republishes once stale)",
    ),
    KeyKind(
        "ready_sets",
        "idx:ready",
        "set",
        "the ready sets' keys (every connection and object with a published delivery): what "
        "the sweep reads, instead of an index of every published delivery",
    ),
    # the work queue's figures
    KeyKind("published", "msgseq", "string", "counter: messages published (also their tags)"),
    KeyKind(
        "withdrawn",
        "msgwithdrawn",
        "string",
        "counter: messages batches withdrew again (their delivery went with another)",
    ),
    # connections
    KeyKind("counts", "conn:{connection}:counts", "hash", "state -> deliveries in it"),
    KeyKind(
        "pause",
        "conn:{connection}:pause",
        "string",
        "JSON {reason, since, by, detail} while the connection is paused",
    ),
    KeyKind("held", "conn:{connection}:held", "zset", "its HELD deliveries, by seq"),
    KeyKind(
        "last",
        "conn:{connection}:last",
        "hash",
        "success_at, failure_at, failure, paused_at, paused_by (the latest pause, kept after "
        "a resume)",
    ),
    KeyKind(
        "breaker",
        "conn:{connection}:breaker",
        "hash",
        "circuit: state (CircuitState), failures, open_until, open_ms, probe, probe_until",
    ),
    KeyKind(
        "cooldown",
        "conn:{connection}:cooldown",
        "string",
        "no attempt before this (ms), after a 429; expires then",
    ),
    KeyKind(
        "rate",
        "conn:{connection}:rl",
        "string",
        "the rate limiter's theoretical arrival time (GCRA, ms; a limit with a burst)",
    ),
    KeyKind(
        "rate_window",
        "conn:{connection}:rw",
        "zset",
        "the rate limiter's rolling window (a limit without a burst): one member per "
        "attempt (delivery id|claim token), scored by its lease's end while in flight, "
        "by its finish after; at most `requests` members",
    ),
    KeyKind(
        "oauth",
        "conn:{connection}:oauth",
        "string",
        "JSON token state: access token, expiry, refresh token",
        lua=False,
    ),
    KeyKind(
        "dead_counts",
        "conn:{connection}:dead",
        "hash",
        "dead-letter category -> its DEAD deliveries now (the dead_letters alert's groups)",
    ),
    KeyKind(
        "oauth_refresh_failure",
        "conn:{connection}:oauth:failing",
        "string",
        "JSON {first_at, last_at, failures, error, token_expires_at} while token refreshes "
        "fail (credential_expiring); deleted by a successful refresh",
        lua=False,
    ),
    KeyKind(
        "oauth_lock",
        "conn:{connection}:oauth:lock",
        "string",
        "one token refresh at a time (a redis-py lock)",
        lua=False,
    ),
    # what connectors and the worker remember between deliveries (Python only)
    KeyKind(
        "fetched",
        "fetched:{connection}:{object}:{id}",
        "string",
        "JSON {at_ms, record}: a record a mapping's `fetch` read; expires after its window",
        lua=False,
    ),
    KeyKind(
        "related",
        "related:{connection}:{object}:{key}",
        "string",
        "the target's id of a related record found or created on its normalised key (TTL)",
        lua=False,
    ),
    KeyKind(
        "related_lock",
        "related:lock:{connection}:{object}:{key}",
        "string",
        "one find-or-create of a related record at a time (a redis-py lock)",
        lua=False,
    ),
    KeyKind(
        "limit_probe",
        "conn:{connection}:limitprobe",
        "string",
        "counter: the target's daily limit refusals in a row (probe backoff; TTL)",
        lua=False,
    ),
    KeyKind(
        "limit_probe_flight",
        "conn:{connection}:limitprobe:flight",
        "string",
        "the one request probing the target's daily limit, while it is under way (TTL)",
        lua=False,
    ),
    KeyKind(
        "api_usage",
        "conn:{connection}:usage",
        "hash",
        "used, limit, at: the target's own API usage report (Sforce-Limit-Info)",
        lua=False,
    ),
    # the hub
    KeyKind("stats", "stats:{name}", "hash", "hub-wide counters (StatsHash)"),
    KeyKind(
        "alerts", "alerts", "list", "the alert outbox: JSON {alert, attempts, next_at}", lua=False
    ),
    KeyKind("alerts_lock", "alerts:lock", "string", "one alert sender at a time", lua=False),
    KeyKind("sweep_lock", "sweep:lock", "string", "one sweep at a time", lua=False),
    KeyKind(
        "alert_states",
        "alerting:state",
        "hash",
        "alert dedup key -> JSON: its current (or last) episode (core/alerting)",
        lua=False,
    ),
    KeyKind(
        "alert_history",
        "alerting:history",
        "list",
        "JSON: resolved alert episodes, newest first, the last 500",
        lua=False,
    ),
    KeyKind(
        "alert_notifications",
        "alerting:notified",
        "hash",
        "`<alert id>|<sink>|<status>` -> JSON {ok, at, error, attempts}: what each sink was sent",
        lua=False,
    ),
    KeyKind("alert_lock", "alerting:lock", "string", "one alert evaluation at a time", lua=False),
    KeyKind(
        "hub_started",
        "hub:started",
        "string",
        "when the scheduler last started (s): went_quiet counts from there at the earliest",
        lua=False,
    ),
    KeyKind(
        "report_sent",
        "alerting:report",
        "string",
        "when the scheduled health report was last sent (s)",
        lua=False,
    ),
    KeyKind(
        "config_generation",
        "config:generation",
        "string",
        "counter: the configuration generation `crmhub reload` announced",
        lua=False,
    ),
    KeyKind(
        "config_refusals",
        "config:refused",
        "hash",
        "process -> JSON {generation, at, problems}: who could not load a generation",
        lua=False,
    ),
    # hot and cold: what leaves Redis for the archive (core/ledger/cold.py, core/archive/)
    KeyKind(
        "terminal_index",
        "idx:terminal",
        "zset",
        "events done for good (every delivery delivered, superseded or discarded; or none: "
        "unrouted, echo), by when they became so (ms): what the archiver moves out",
    ),
    KeyKind("archive_lock", "archive:lock", "string", "one archiver at a time", lua=False),
    # polling sources and backfills (core/polling.py, core/ledger/polls.py)
    KeyKind(
        "poll_cursor",
        "poll:{source}",
        "hash",
        "a polling source's cursor: stamp (the vendor's text), ms, after (the vendor's page "
        "cursor at that stamp), and polled_at, next_at, ok_at, error, error_at, listed",
        lua=False,
    ),
    KeyKind(
        "poll_lock", "poll:lock:{source}", "string", "one poll of a source at a time", lua=False
    ),
    KeyKind(
        "backfill_cursor",
        "backfill:{source}",
        "hash",
        "a backfill's progress (its cursor as poll:{source}'s, since, until, pages, records, "
        "recorded, duplicates, started_at, seconds): resumed after an interruption",
        lua=False,
    ),
)


#: record_digest: two polynomial hashes of the record key's bytes modulo the prime 2**31 - 1
#: (exact in Lua's doubles, so common.lua rq_digest computes the same), 8 hex digits each
_RQ_PRIME = 2147483647
_RQ_BASES = (131, 257)


def record_digest(rk: str) -> str:
    """What names a record's queue (common.lua rq_digest): 16 hex digits of the record key."""
    out = ""
    for base in _RQ_BASES:
        h = 0
        for byte in rk.encode():
            h = (h * base + byte) % _RQ_PRIME
        out += f"{h:08x}"
    return out


#: what an event's first delivery's field names start with in its event's hash, where it is
#: held (core/ledger/deliveries.py)
FOLD = "."


def dedupe_digest(source: str, external_id: str) -> str:
    """What names a sender's event's dedupe key: 11 base64url characters (66 bits) of the
    SHA-256 of its source and id, where the id itself took ~30 (a dedupe key is kept for the
    whole window, one per event: README, "Memory"); two events of one window sharing a digest
    is a 1 in 2**66 / events**2 chance."""
    raw = hashlib.sha256(f"{source}\0{external_id}".encode()).digest()
    return base64.urlsafe_b64encode(raw[:9]).decode()[:11]


class LedgerKeys:
    """The keys of one hub (one key prefix). See LAYOUT for what each holds."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._p = prefix + ":"

    # events
    def dedupe(self, digest: str) -> str:
        return f"{self._p}dd:{digest}"

    def legacy_dedupe(self, source: str, external_id: str) -> str:
        return f"{self._p}dedupe:{source}:{external_id}"

    def event(self, id: str) -> str:
        return f"{self._p}evt:{id}"

    def events(self) -> str:
        return f"{self._p}events"

    def source_events(self, source: str) -> str:
        return f"{self._p}events:src:{source}"

    def echo(self, ref: str) -> str:
        return f"{self._p}echo:{ref}"

    def agreed(self, pair: str, record: str) -> str:
        return f"{self._p}agreed:{pair}:{record}"

    # deliveries
    def seq(self) -> str:
        return f"{self._p}seq"

    def delivery(self, id: str) -> str:
        return f"{self._p}dlv:{id}"

    def attempts(self, id: str) -> str:
        return f"{self._p}dlv:{id}:attempts"

    def actions(self, id: str) -> str:
        return f"{self._p}dlv:{id}:actions"

    def record_queue(self, digest: str) -> str:
        return f"{self._p}rq:{digest}"

    def legacy_record_queue(self, rk: str) -> str:
        return f"{self._p}rk:{rk}"

    def record_applied(self, rk: str) -> str:
        return f"{self._p}rkmeta:{rk}"

    def inflight_index(self) -> str:
        return f"{self._p}idx:inflight"

    def scheduled_index(self) -> str:
        return f"{self._p}idx:scheduled"

    def dead_index(self) -> str:
        return f"{self._p}idx:dead"

    def dead_by_connection(self, connection: str) -> str:
        return f"{self._p}idx:dead:conn:{connection}"

    def dead_by_mapping(self, mapping: str) -> str:
        return f"{self._p}idx:dead:map:{mapping}"

    def dead_by_category(self, category: str) -> str:
        return f"{self._p}idx:dead:cat:{category}"

    def search(self) -> str:
        return f"{self._p}search"

    def action_log(self) -> str:
        return f"{self._p}oplog"

    def operation(self, id: str) -> str:
        return f"{self._p}opn:{id}"

    def operation_ids(self, id: str) -> str:
        return f"{self._p}opn:{id}:ids"

    def operations(self) -> str:
        return f"{self._p}opns"

    def idempotency(self, key: str) -> str:
        return f"{self._p}idem:{key}"

    def ready(self, connection: str, object: str) -> str:
        return f"{self._p}ready:{connection}:{object}"

    def ready_sets(self) -> str:
        return f"{self._p}idx:ready"

    # the work queue's figures
    def published(self) -> str:
        return f"{self._p}msgseq"

    def withdrawn(self) -> str:
        return f"{self._p}msgwithdrawn"

    # connections
    def counts(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:counts"

    def pause(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:pause"

    def held(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:held"

    def last(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:last"

    def breaker(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:breaker"

    def cooldown(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:cooldown"

    def rate(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:rl"

    def rate_window(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:rw"

    def oauth(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:oauth"

    def dead_counts(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:dead"

    def oauth_refresh_failure(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:oauth:failing"

    def oauth_lock(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:oauth:lock"

    # what connectors and the worker remember
    def fetched(self, connection: str, object: str, id: str) -> str:
        return f"{self._p}fetched:{connection}:{object}:{id}"

    def related(self, connection: str, object: str, key: str) -> str:
        return f"{self._p}related:{connection}:{object}:{key}"

    def related_lock(self, connection: str, object: str, key: str) -> str:
        return f"{self._p}related:lock:{connection}:{object}:{key}"

    def limit_probe(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:limitprobe"

    def limit_probe_flight(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:limitprobe:flight"

    def api_usage(self, connection: str) -> str:
        return f"{self._p}conn:{connection}:usage"

    # the hub
    def stats(self, name: StatsHash) -> str:
        return f"{self._p}stats:{name}"

    def alerts(self) -> str:
        return f"{self._p}alerts"

    def alerts_lock(self) -> str:
        return f"{self._p}alerts:lock"

    def sweep_lock(self) -> str:
        return f"{self._p}sweep:lock"

    def alert_states(self) -> str:
        return f"{self._p}alerting:state"

    def alert_history(self) -> str:
        return f"{self._p}alerting:history"

    def alert_notifications(self) -> str:
        return f"{self._p}alerting:notified"

    def alert_lock(self) -> str:
        return f"{self._p}alerting:lock"

    def hub_started(self) -> str:
        return f"{self._p}hub:started"

    def report_sent(self) -> str:
        return f"{self._p}alerting:report"

    def config_generation(self) -> str:
        return f"{self._p}config:generation"

    def config_refusals(self) -> str:
        return f"{self._p}config:refused"

    # hot and cold
    def terminal_index(self) -> str:
        return f"{self._p}idx:terminal"

    def archive_lock(self) -> str:
        return f"{self._p}archive:lock"

    # polling sources and backfills
    def poll_cursor(self, source: str) -> str:
        return f"{self._p}poll:{source}"

    def poll_lock(self, source: str) -> str:
        return f"{self._p}poll:lock:{source}"

    def backfill_cursor(self, source: str) -> str:
        return f"{self._p}backfill:{source}"


LUA_KINDS = {kind.name: kind for kind in LAYOUT if kind.lua}
_LUA_CALL = re.compile(r"\b(\w+)_key\(")


def lua_expression(kind: KeyKind, args: list[str]) -> str:
    """The Lua expression that builds `kind` from the script's prefix `p` and the argument
    expressions: `delivery_key(id)` is `(p .. ':dlv:' .. (id))`."""
    if len(args) != len(kind.parts):
        raise LedgerScriptError(
            f"{kind.name}_key takes {len(kind.parts)} argument(s) "
            f"({', '.join(kind.parts)}), given {len(args)}"
        )
    given = dict(zip(kind.parts, args, strict=True))
    pieces = (
        f"({given[piece[1:-1]]})" if piece.startswith("{") else f"'{piece}'"
        for piece in re.split(r"({\w+})", ":" + kind.pattern)
        if piece
    )
    return "(" + " .. ".join(("p", *pieces)) + ")"


def expand_lua_keys(source: str) -> str:
    """Every `<kind>_key(...)` call in a script's source replaced by the expression that builds
    the key, so the scripts name their keys by kind yet pay nothing per call for it (a Lua
    function per kind would be a closure made on every run of every script)."""
    out = []
    pos = 0
    for match in _LUA_CALL.finditer(source):
        if match.start() < pos or match[1] not in LUA_KINDS:
            continue
        args, end = _call_arguments(source, match.end())
        out += [
            source[pos : match.start()],
            lua_expression(LUA_KINDS[match[1]], [expand_lua_keys(a) for a in args]),
        ]
        pos = end
    return "".join(out) + source[pos:]


def _call_arguments(source: str, start: int) -> tuple[list[str], int]:
    """The top-level, comma-separated arguments of a call whose `(` ends just before `start`,
    and the index after its `)`."""
    args: list[str] = []
    depth, quote, begin = 0, "", start
    for i in range(start, len(source)):
        char = source[i]
        if quote:
            if char == quote and source[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        elif char == ")":
            tail = source[begin:i].strip()
            return ([*args, tail] if tail or args else args), i + 1
        elif char == "," and not depth:
            args.append(source[begin:i].strip())
            begin = i + 1
    raise LedgerScriptError(f"unclosed call at {source[max(0, start - 30) : start]!r}")


for _kind in LAYOUT:  # each method's documentation is its row of the table
    getattr(LedgerKeys, _kind.name).__doc__ = f"{_kind.pattern} ({_kind.type}): {_kind.holds}"
