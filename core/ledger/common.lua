-- The prelude every ledger script shares (core/ledger/scripts.py assembles each script as:
-- `message(id, tag)`, the Celery message for a delivery, built from the queue's template fixed
-- per process, so it is neither sent nor decoded on every call; this file; then the script's
-- own includes (claim_one.lua) and file).
--
-- KEYS: none. Every key is built from the prefix in the request (so the scripts assume one
-- Redis, not a cluster). ARGV[1] is the JSON request: prefix (p), now (ms), queue (the Celery
-- list key, kombu's: not in the layout below), and the script's own fields (its header).
--
-- Words: `State.pending`, `AttemptOutcome.retry`... are the Python enumerations' values
-- (core/vocabulary.py), replaced by the quoted value when the script is assembled; a script
-- never spells one of those words as a literal.
--
-- Key layout: every key the ledger owns, under the hub's prefix <p>. core/ledger/keys.py holds
-- the same table (LAYOUT) and builds the keys in Python; a script names a key by its kind,
-- `<kind>_key(...)` (the delivery's: delivery_key with its id), and each such call is
-- replaced by the concatenation that builds it when the script is assembled. A unit test
-- checks this list against the table.
--   <p>:dd:{digest}                    string  first event id of a sender's event id (TTL)
--   <p>:dedupe:{source}:{external_id}  string  the same, as written before (TTL)
--   <p>:evt:{id}                       hash    an accepted event (state, body, headers...)
--   <p>:events                         zset    every event, by received_at
--   <p>:events:src:{source}            zset    one source's events, by received_at
--   <p>:echo:{ref}                     hash    what the hub last wrote to a CRM record (TTL)
--   <p>:agreed:{pair}:{record}         hash    what a two-way pair last agreed on (TTL; Python)
--   <p>:seq                            string  counter: deliveries' arrival order
--   <p>:dlv:{id}                       hash    a delivery (state, rk, seq, attempts...)
--   <p>:dlv:{id}:attempts              list    its attempts (JSON), the last 100
--   <p>:dlv:{id}:actions               list    operators' actions on it (JSON)
--   <p>:rq:{digest}                    zset    one CRM record's deliveries by seq; head goes
--   <p>:rk:{rk}                        zset    the same, as named before (read until empty)
--   <p>:rkmeta:{rk}                    hash    applied_ms (newest_wins; TTL)
--   <p>:idx:inflight                   zset    IN_FLIGHT, by lease expiry
--   <p>:idx:scheduled                  zset    SCHEDULED, by due time
--   <p>:idx:dead                       zset    DEAD, by dead_at
--   <p>:idx:dead:conn:{connection}     zset    one connection's DEAD, by dead_at
--   <p>:idx:dead:map:{mapping}         zset    one mapping's DEAD, by dead_at
--   <p>:idx:dead:cat:{category}        zset    one category's DEAD, by dead_at
--   <p>:search                         zset    term\0received_at\0event id, by member (score 0)
--   <p>:oplog                          stream  the operator action log (capped)
--   <p>:opn:{id}                       hash    a bulk replay or discard and its progress
--   <p>:opn:{id}:ids                   list    the dead letters it takes
--   <p>:opns                           zset    bulk operations by created_at (Python only)
--   <p>:idem:{key}                     string  an Idempotency-Key's operation (Python only)
--   <p>:ready:{connection}:{object}    zset    published PENDING of one connection and object
--   <p>:idx:ready                      set     the ready sets' keys (what the sweep reads)
--   <p>:msgseq                         string  counter: messages published (their tags)
--   <p>:msgwithdrawn                   string  counter: messages batches withdrew
--   <p>:conn:{connection}:counts       hash    state -> deliveries
--   <p>:conn:{connection}:pause        string  JSON pause info while paused
--   <p>:conn:{connection}:held         zset    HELD deliveries, by seq
--   <p>:conn:{connection}:last         hash    success_at, failure_at, failure, paused_at/by
--   <p>:conn:{connection}:breaker      hash    circuit breaker state
--   <p>:conn:{connection}:cooldown     string  no attempt before (ms), after a 429 (TTL)
--   <p>:conn:{connection}:rl           string  rate limiter's arrival time (GCRA, ms; burst)
--   <p>:conn:{connection}:rw           zset    rate limiter's rolling window (attempts)
--   <p>:conn:{connection}:dead         hash    dead-letter category -> DEAD deliveries now
--   <p>:conn:{connection}:oauth:failing string JSON failing token refreshes (Python only)
--   <p>:conn:{connection}:oauth        string  JSON OAuth token state (Python only)
--   <p>:conn:{connection}:oauth:lock   string  one token refresh at a time (Python only)
--   <p>:fetched:{connection}:{object}:{id}  string  a fetched record (TTL; Python only)
--   <p>:related:{connection}:{object}:{key}  string  a related record's id (TTL; Python only)
--   <p>:related:lock:{connection}:{object}:{key}  string  one find-or-create (Python only)
--   <p>:conn:{connection}:limitprobe   string  daily-limit refusals in a row (Python only)
--   <p>:conn:{connection}:limitprobe:flight  string  the one probe under way (Python only)
--   <p>:conn:{connection}:usage        hash    the target's API usage report (Python only)
--   <p>:stats:{name}                   hash    hub-wide counters: webhooks, attempts, answers
--   <p>:alerts                         list    the alert outbox (Python only)
--   <p>:alerts:lock                    string  one alert sender at a time (Python only)
--   <p>:sweep:lock                     string  one sweep at a time (Python only)
--   <p>:alerting:state                 hash    alert states by dedup key (Python only)
--   <p>:alerting:history               list    resolved alert episodes (Python only)
--   <p>:alerting:notified              hash    what each alert sink was sent (Python only)
--   <p>:alerting:lock                  string  one alert evaluation at a time (Python only)
--   <p>:hub:started                    string  when the scheduler last started (Python only)
--   <p>:alerting:report                string  when the health report was sent (Python only)
--   <p>:config:generation              string  counter: configuration generation (Python only)
--   <p>:config:refused                 hash    who refused a generation (Python only)
--   <p>:idx:terminal                   zset    events done for good, by when (archiving)
--   <p>:archive:lock                   string  one archiver at a time (Python only)
--   <p>:poll:{source}                  hash    a polling source's cursor (Python only)
--   <p>:poll:lock:{source}             string  one poll of a source at a time (Python only)
--   <p>:backfill:{source}              hash    a backfill's progress (Python only)
local req = cjson.decode(ARGV[1])
local p = req.prefix
local now = tonumber(req.now)

-- Where a delivery's fields live (core/ledger/deliveries.py): its own hash, or, for an event's
-- first delivery (`dlv_` and its event id's 24 hex digits), its event's hash, each field's name
-- behind FOLD; there its id and event_id are not stored but follow from its id (an edit that
-- re-points it stores `.event_id`). Every script reads and writes a delivery only through the
-- d* helpers below, so none needs to know which it is.
-- Its common fields go by a short name there (FOLDED, name -> FOLD and a letter, and UNFOLDED,
-- its inverse: core/ledger/deliveries.py, prepended to every script), any other by FOLD and
-- its name. `updated_at` is written only once it differs from `created_at` (for every
-- delivery: dmget and core/ledger/deliveries.py read it as `created_at` until then).
local FOLD = '.'
local function folded_event(id) return 'evt_' .. string.sub(id, 5) end
local function folded_name(name) return FOLDED[name] or (FOLD .. name) end
local function unfolded_name(stored) return UNFOLDED[stored] or string.sub(stored, 2) end

-- the delivery's hash key and its fields' prefix ('' or FOLD); nil when it is in neither
local function dhome(id)
  local own = delivery_key(id)
  if redis.call('EXISTS', own) == 1 then return own, '' end
  local ev = event_key(folded_event(id))
  if redis.call('HEXISTS', ev, folded_name('state')) == 1 then return ev, FOLD end
  return nil, nil
end

local function prefixed(pre, names)
  local out = {}
  for i, name in ipairs(names) do out[i] = pre == FOLD and folded_name(name) or name end
  return out
end

-- What a field not written reads as (core/ledger/deliveries.py the same): a folded delivery's
-- id and event_id follow from its id, its created_at is its event's received_at, its connection
-- and object begin its record key (when they do, they are not written); any
-- delivery's attempts are 0 until its first and its updated_at is created_at until it changes.
local function dfallback(id, key, pre, name)
  if name == 'attempts' then return '0' end
  if pre == FOLD and name == 'id' then return id end
  if pre == FOLD and name == 'event_id' then return folded_event(id) end
  if pre == FOLD and (name == 'connection' or name == 'object') then
    -- not written when its record key starts with them (core/ledger/deliveries.py)
    -- (the pattern `^([^:]+):([^:]+):`, its colons as \58: a record key's, not a key name)
    local rk = redis.call('HGET', key, folded_name('rk')) or ''
    local conn, obj = string.match(rk, '^([^\58]+)\58([^\58]+)\58')
    return name == 'connection' and conn or obj
  end
  if name == 'updated_at' then name = 'created_at' end
  if name == 'created_at' then
    return redis.call('HGET', key, pre == FOLD and folded_name(name) or name)
      or (pre == FOLD and redis.call('HGET', key, 'received_at')) or nil
  end
  return nil
end

-- HMGET of a delivery's fields (all nil when it is gone)
local function dmget(id, ...)
  local names = {...}
  local key, pre = dhome(id)
  if not key then return {} end
  local values = redis.call('HMGET', key, unpack(prefixed(pre, names)))
  for i, name in ipairs(names) do
    if not values[i] then values[i] = dfallback(id, key, pre, name) end
  end
  return values
end

local function dget(id, name) return dmget(id, name)[1] end

-- HSET of a delivery's fields (name, value, ...); nothing when it is gone
local function dset(id, ...)
  local key, pre = dhome(id)
  if not key then return end
  local args = {...}
  for i = 1, #args, 2 do
    if pre == FOLD and args[i] == 'rk' then
      -- a new record key need not begin with its connection and object: write them first
      for _, name in ipairs({'connection', 'object'}) do
        local value = dfallback(id, key, pre, name)
        if value then redis.call('HSETNX', key, folded_name(name), value) end
      end
    end
    args[i] = pre == FOLD and folded_name(args[i]) or args[i]
  end
  redis.call('HSET', key, unpack(args))
end

local function dsetnx(id, name, value)
  local key, pre = dhome(id)
  if key then redis.call('HSETNX', key, prefixed(pre, {name})[1], value) end
end

local function dincr(id, name, by)
  local key, pre = dhome(id)
  if not key then return nil end
  return redis.call('HINCRBY', key, prefixed(pre, {name})[1], by)
end

local function ddel(id, ...)
  local key, pre = dhome(id)
  if key then redis.call('HDEL', key, unpack(prefixed(pre, {...}))) end
end

-- HGETALL of a delivery, flat, as its own hash would answer it ({} when it is gone)
local function dgetall(id)
  local key, pre = dhome(id)
  if not key then return {} end
  local all = redis.call('HGETALL', key)
  local out, seen = {}, {}
  for i = 1, #all, 2 do
    local name = all[i]
    if pre == FOLD and string.sub(name, 1, 1) ~= FOLD then
      name = nil  -- the event's own field
    elseif pre == FOLD then
      name = unfolded_name(name)
    end
    if name then
      seen[name] = all[i + 1]; out[#out + 1] = name; out[#out + 1] = all[i + 1]
    end
  end
  for _, name in ipairs({'id', 'event_id', 'connection', 'object', 'attempts', 'created_at',
                         'updated_at'}) do
    if not seen[name] then
      local value = dfallback(id, key, pre, name)
      if value then out[#out + 1] = name; out[#out + 1] = value end
    end
  end
  return out
end

-- Remove a delivery (its hash, or its fields from its event's) with its attempts and actions.
local function ddelete(id)
  local key, pre = dhome(id)
  if pre == FOLD then
    local names = {}
    for _, name in ipairs(redis.call('HKEYS', key)) do
      if string.sub(name, 1, 1) == FOLD then names[#names + 1] = name end
    end
    if #names > 0 then redis.call('HDEL', key, unpack(names)) end
  end
  redis.call('DEL', delivery_key(id), attempts_key(id), actions_key(id))
end

-- Change a delivery's state, keeping the per-connection counts in step.
local function move(id, conn, from, to)
  dset(id, 'state', to, 'updated_at', now)
  if from then redis.call('HINCRBY', counts_key(conn), from, -1) end
  redis.call('HINCRBY', counts_key(conn), to, 1)
end

-- The ready set (see the layout) a delivery belongs to: what a batching worker may claim
-- together with its own.
local function ready_key_of(id)
  local conn, obj = unpack(dmget(id, 'connection', 'object'))
  return ready_key(tostring(conn), tostring(obj))
end

-- Publish the Celery message for a PENDING delivery (in the same atomic step). The message's
-- tag is kept as the delivery's `msg`, so the exact message can be withdrawn again when the
-- delivery goes out in another's batch (claim_batch.lua). Returns the tag.
-- A published delivery waits in its ready set, by publish time: what a batch may take with
-- it and what the sweep republishes when it waited too long (ready_sets lists the sets).
-- (`ready`: the delivery's ready key when the caller knows it; `stamped`: the caller writes
-- published_at and msg itself, with the delivery's other fields.)
local function publish(id, ready, stamped)
  local n = tostring(redis.call('INCR', published_key()))
  ready = ready or ready_key_of(id)
  redis.call('LPUSH', req.queue, message(id, n))
  redis.call('ZADD', ready, now, id)
  redis.call('SADD', ready_sets_key(), ready)
  if not stamped then dset(id, 'published_at', now, 'msg', n) end
  return n
end

-- The delivery no longer waits for a worker (claimed, held, scheduled, or not its turn).
local function unpublish(id)
  redis.call('ZREM', ready_key_of(id), id)
end

-- Writes to one record run one at a time, in arrival order: the record key's queue.
-- Its queue is named by a digest of the record key (core/ledger/keys.py record_digest: two
-- polynomial hashes modulo 2^31 - 1, exact in doubles); a queue named by the record key itself
-- (before this layout) is read too until it empties, its deliveries first (they are older).
local function rq_digest(rk)
  local out = ''
  for _, base in ipairs({131, 257}) do
    local h = 0
    for i = 1, #rk do h = (h * base + string.byte(rk, i)) % 2147483647 end
    out = out .. string.format('%08x', h)
  end
  return out
end

local function rq_key(rk) return record_queue_key(rq_digest(rk)) end

-- a delivery leaves its record's queue
local function rq_remove(rk, id)
  redis.call('ZREM', rq_key(rk), id)
  redis.call('ZREM', legacy_record_queue_key(rk), id)
end

local function head(rk)
  local old = redis.call('ZRANGE', legacy_record_queue_key(rk), 0, 0)
  if old[1] then return old[1] end
  return redis.call('ZRANGE', rq_key(rk), 0, 0)[1]
end

local function paused(conn) return redis.call('EXISTS', pause_key(conn)) == 1 end

-- The connection's rate limit, one for every worker, host, poll and backfill: take a place for
-- `member` (an attempt, a listing), held until `hold_until`. Without a burst a rolling window:
-- never more than `requests` places in any `window_ms` (an attempt's place moves to its finish
-- in finish.lua, so a late sender cannot overfill a window; at most `requests` members); with a
-- burst GCRA, one theoretical arrival time. Returns nil when taken, else the ms to wait
-- (nothing changed).
local function take_rate(conn, rate, member, hold_until)
  if rate.window_ms then
    local wkey = rate_window_key(conn)
    redis.call('ZREMRANGEBYSCORE', wkey, '-inf', now - rate.window_ms)
    if redis.call('ZCARD', wkey) >= rate.requests then
      local oldest = tonumber(redis.call('ZRANGE', wkey, 0, 0, 'WITHSCORES')[2])
      if oldest > now then
        -- every place is held by an attempt still in flight: look again shortly
        return math.max(10, math.min(rate.window_ms / rate.requests, 100))
      end
      return oldest + rate.window_ms - now
    end
    redis.call('ZADD', wkey, hold_until, member)
    redis.call('PEXPIRE', wkey, math.ceil(hold_until - now + rate.window_ms + 1000))
    return nil
  end
  local rlkey = rate_key(conn)
  local tat = math.max(tonumber(redis.call('GET', rlkey)) or now, now)
  local new_tat = tat + rate.interval_ms
  local allow_at = new_tat - rate.burst_ms
  if allow_at > now then return allow_at - now end
  redis.call('SET', rlkey, new_tat, 'PX', math.ceil(new_tat - now + 1000))
  return nil
end

-- The circuit breaker's gate (claim_one.lua, permit.lua): while open nothing goes; once due,
-- exactly one probe (`who`, for `probe_ms`) goes through. Returns nothing to go, else until
-- when (ms) and why (Reason) to wait.
local function circuit_gate(conn, who, probe_ms)
  local bkey = breaker_key(conn)
  local bstate, open_until, probe, probe_until =
    unpack(redis.call('HMGET', bkey, 'state', 'open_until', 'probe', 'probe_until'))
  if bstate ~= CircuitState.open and bstate ~= CircuitState.half_open then return nil, nil end
  open_until = tonumber(open_until) or 0
  probe_until = tonumber(probe_until) or 0
  if bstate == CircuitState.open and now < open_until then
    return open_until, Reason.circuit_open
  end
  if probe and probe ~= who and now < probe_until then return probe_until, Reason.circuit_probe end
  redis.call('HSET', bkey, 'state', CircuitState.half_open, 'probe', who,
             'probe_until', now + probe_ms)
  return nil, nil
end

local function hold(id, conn, from, seq)
  move(id, conn, from, State.held)
  redis.call('ZADD', held_key(conn), seq, id)
  dset(id, 'held_at', now)
end

-- After a delivery leaves its record's queue, start the next write for that record.
local function advance(rk)
  local nxt = head(rk)
  if nxt and dget(nxt, 'state') == State.pending
      and not redis.call('ZSCORE', ready_key_of(nxt), nxt) then
    publish(nxt)
  end
end

-- PENDING (or IN_FLIGHT) -> SCHEDULED until `due` (ms).
local function schedule(id, conn, from, due)
  move(id, conn, from, State.scheduled)
  unpublish(id)
  redis.call('ZADD', scheduled_index_key(), due, id)
  dset(id, 'due_at', due)
end

-- Hot and cold: an event whose deliveries are all done for good (delivered, superseded,
-- discarded) joins the terminal index, by when that happened; the archiver moves it out of
-- Redis once CRMHUB_HOT_RETENTION_SECONDS have passed (core/ledger/cold.py). A dead letter
-- keeps its event hot until an operator replays or discards it.
local function done_for_good(state)
  return state == State.delivered or state == State.superseded or state == State.discarded
end

-- An event's source and its deliveries' ids; nil when the event is gone. Its `deliveries`
-- (comma-separated) is not written when its one delivery is the one folded into its hash
-- (core/ledger/event_fields.py, the same in Python).
local function event_deliveries(event_id)
  local source, listed = unpack(redis.call('HMGET', event_key(event_id), 'source', 'deliveries'))
  if not source then return nil, nil end
  if not listed then return source, {'dlv_' .. string.sub(event_id, 5)} end
  local ids = {}
  for id in string.gmatch(listed, '[^,]+') do ids[#ids + 1] = id end
  return source, ids
end

-- Hex digits as the bytes they spell.
local function hex_bytes(hex)
  return (string.gsub(hex, '..', function(pair) return string.char(tonumber(pair, 16)) end))
end

-- An event id as bytes: one of ours (`evt_` and 24 lowercase hex digits, core/ids.py) as its
-- 12 bytes (6 of milliseconds, 6 random: they sort by time as the text does), half the text.
-- Another id (none the hub makes) stays as it is. core/ledger/search.py and replies.py read
-- both back.
local function id_bytes(id)
  if #id == 28 and string.match(id, '^evt_[0-9a-f]+$') then
    return hex_bytes(string.sub(id, 5))
  end
  return id
end

-- The search index (one sorted set, score 0, read by member range: core/ledger/pages.py):
-- an entry is \1, the first 8 bytes of the term's SHA-1 (`digest`, in hex, computed by the
-- caller: core/ledger/search.py term_digest; so no entry spells an address) and the event's
-- id as bytes (so a term's entries sort by time), 21 bytes in all.
local function search_entry(digest, event_id)
  return '\1' .. hex_bytes(digest) .. id_bytes(event_id)
end

-- An entry as written before (the term, NUL, received ms, NUL, event id): a hub upgraded with
-- events in Redis still finds them by it and removes it with them.
local function legacy_search_entry(term, received, event_id)
  return term .. '\0' .. string.format('%013d', tonumber(received)) .. '\0' .. event_id
end

-- An event leaving Redis (archived or erased) leaves the search index too, so no entry naming
-- an address outlives it: `terms` are its terms, which the caller found again from its body
-- and sender id as accept did (core/ledger/cold.py terms_of; not stored on the event, it
-- would cost every event held), plus those an event recorded before kept on its hash
-- (`terms`, one per line; those have entries of the form before only). `digests` are the
-- terms' digests (search_entry). Both forms of entry go.
local function unindex_terms(event_id, terms, digests)
  local kept, received = unpack(redis.call('HMGET', event_key(event_id), 'terms', 'received_at'))
  if not received then return end
  for i, term in ipairs(terms or {}) do
    redis.call('ZREM', search_key(), legacy_search_entry(term, received, event_id))
    if digests and digests[i] then
      redis.call('ZREM', search_key(), search_entry(digests[i], event_id))
    end
  end
  for term in string.gmatch(kept or '', '[^\n]+') do
    redis.call('ZREM', search_key(), legacy_search_entry(term, received, event_id))
  end
end

local function settle(event_id)
  local source, ids = event_deliveries(event_id)
  if not source then return end
  for _, did in ipairs(ids) do
    if not done_for_good(dget(did, 'state')) then return end
  end
  redis.call('ZADD', terminal_index_key(), 'NX', now, event_id)
end
