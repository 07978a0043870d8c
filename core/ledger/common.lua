-- Shared by every ledger script (prepended at load time, after `message(id, tag)`: the
-- Celery message for a delivery, built from the queue's template fixed per process, so it is
-- not sent and decoded on every call; see core/ledger/scripts.py). Each script receives
-- ARGV[1] = JSON request with at least: prefix (p), now (ms), queue (the Celery list key).
local req = cjson.decode(ARGV[1])
local p = req.prefix
local now = tonumber(req.now)

local function dkey(id) return p .. ':dlv:' .. id end
local function ckey(conn, what) return p .. ':conn:' .. conn .. ':' .. what end

-- Change a delivery's state, keeping the per-connection counts in step.
local function move(id, conn, from, to)
  redis.call('HSET', dkey(id), 'state', to, 'updated_at', now)
  if from then redis.call('HINCRBY', ckey(conn, 'counts'), from, -1) end
  redis.call('HINCRBY', ckey(conn, 'counts'), to, 1)
end

-- Published PENDING deliveries, per connection and object: what a batching worker may
-- claim together with its own.
local function ready_key(id)
  local conn, obj = unpack(redis.call('HMGET', dkey(id), 'connection', 'object'))
  return p .. ':ready:' .. tostring(conn) .. ':' .. tostring(obj)
end

-- Publish the Celery message for a PENDING delivery (in the same atomic step). The message's
-- tag is kept as the delivery's `msg`, so the exact message can be withdrawn again when the
-- delivery goes out in another's batch (claim_batch.lua). Returns the tag.
-- (`ready`: the delivery's ready key when the caller knows it; `stamped`: the caller writes
-- published_at and msg itself, with the delivery's other fields.)
local function publish(id, ready, stamped)
  local n = tostring(redis.call('INCR', p .. ':msgseq'))
  redis.call('LPUSH', req.queue, message(id, n))
  redis.call('ZADD', p .. ':idx:pending', now, id)
  redis.call('ZADD', ready or ready_key(id), now, id)
  if not stamped then redis.call('HSET', dkey(id), 'published_at', now, 'msg', n) end
  return n
end

-- The delivery no longer waits for a worker (claimed, held, scheduled, or not its turn).
local function unpublish(id)
  redis.call('ZREM', p .. ':idx:pending', id)
  redis.call('ZREM', ready_key(id), id)
end

-- Writes to one record run one at a time, in arrival order: the record key's queue.
local function rkey(rk) return p .. ':rk:' .. rk end
local function head(rk)
  local h = redis.call('ZRANGE', rkey(rk), 0, 0)
  return h[1]
end

local function paused(conn) return redis.call('EXISTS', ckey(conn, 'pause')) == 1 end

local function hold(id, conn, from, seq)
  move(id, conn, from, 'held')
  redis.call('ZADD', ckey(conn, 'held'), seq, id)
  redis.call('HSET', dkey(id), 'held_at', now)
end

-- After a delivery leaves its record's queue, start the next write for that record.
local function advance(rk)
  local nxt = head(rk)
  if nxt and redis.call('HGET', dkey(nxt), 'state') == 'pending'
      and not redis.call('ZSCORE', p .. ':idx:pending', nxt) then
    publish(nxt)
  end
end

-- The newest source timestamp applied to a record (conflict rule newest_wins).
local function rkmeta(rk) return p .. ':rkmeta:' .. rk end

-- PENDING (or IN_FLIGHT) -> SCHEDULED until `due` (ms).
local function schedule(id, conn, from, due)
  move(id, conn, from, 'scheduled')
  unpublish(id)
  redis.call('ZADD', p .. ':idx:scheduled', due, id)
  redis.call('HSET', dkey(id), 'due_at', due)
end

-- Claim one delivery for an attempt: PENDING -> IN_FLIGHT with a lease owned by `token`.
-- `rate` (GCRA parameters) is nil when the caller already holds the connection's rate token.
-- Returns one of:
--   {'skip', why}                stale or duplicate message (not pending, not its turn)
--   {'held'}                     the connection is paused: now HELD
--   {'superseded'}               older than what was already applied to the record
--   {'deferred', due_ms, why}    cooldown / circuit open / long rate wait: now SCHEDULED
--   {'wait', ms}                 rate limit: try again after ms (state unchanged)
--   {'claimed', attempts}        now IN_FLIGHT, owned by token
local function claim_one(id, token, lease_ms, rate, max_wait_ms)
  local state, conn, rk, seq, occurred = unpack(redis.call('HMGET', dkey(id), 'state',
                                                           'connection', 'rk', 'seq',
                                                           'occurred_ms'))
  if state ~= 'pending' then return {'skip', state or 'missing'} end
  if head(rk) ~= id then
    -- Not this record's turn: it is published again when the writes before it finish.
    unpublish(id)
    return {'skip', 'waiting'}
  end
  -- newest_wins: an event older (by the source's timestamp) than the last one applied to this
  -- record must not overwrite it
  occurred = tonumber(occurred)
  if occurred then
    local applied = tonumber(redis.call('HGET', rkmeta(rk), 'applied_ms'))
    if applied and occurred < applied then
      unpublish(id)
      move(id, conn, 'pending', 'superseded')
      redis.call('HSET', dkey(id), 'superseded_by_ms', applied)
      redis.call('ZREM', rkey(rk), id)
      advance(rk)
      return {'superseded'}
    end
  end
  if paused(conn) then
    unpublish(id)
    hold(id, conn, 'pending', seq)
    return {'held'}
  end

  local cooldown = tonumber(redis.call('GET', ckey(conn, 'cooldown')))
  if cooldown and cooldown > now then
    schedule(id, conn, 'pending', cooldown)
    return {'deferred', cooldown, 'cooldown'}
  end

  -- Circuit breaker: while open, deliveries wait; once due, exactly one probe goes through.
  local bkey = ckey(conn, 'breaker')
  local bstate, open_until, probe, probe_until =
    unpack(redis.call('HMGET', bkey, 'state', 'open_until', 'probe', 'probe_until'))
  if bstate == 'open' or bstate == 'half_open' then
    open_until = tonumber(open_until) or 0
    probe_until = tonumber(probe_until) or 0
    if bstate == 'open' and now < open_until then
      schedule(id, conn, 'pending', open_until)
      return {'deferred', open_until, 'circuit_open'}
    end
    if probe and probe ~= id and now < probe_until then
      local due = math.min(probe_until, now + 1000)
      schedule(id, conn, 'pending', due)
      return {'deferred', due, 'circuit_probe'}
    end
    redis.call('HSET', bkey, 'state', 'half_open', 'probe', id, 'probe_until', now + lease_ms)
  end

  -- Rate limit shared by every worker (GCRA: one theoretical arrival time per connection).
  if rate then
    local rlkey = ckey(conn, 'rl')
    local tat = math.max(tonumber(redis.call('GET', rlkey)) or now, now)
    local new_tat = tat + rate.interval_ms
    local allow_at = new_tat - rate.burst_ms
    if allow_at > now then
      local wait = allow_at - now
      if wait > max_wait_ms then
        schedule(id, conn, 'pending', now + wait)
        return {'deferred', now + wait, 'rate_limit'}
      end
      return {'wait', wait}
    end
    redis.call('SET', rlkey, new_tat, 'PX', math.ceil(new_tat - now + 1000))
  end

  local lease_until = now + lease_ms
  move(id, conn, 'pending', 'in_flight')
  unpublish(id)
  redis.call('ZADD', p .. ':idx:inflight', lease_until, id)
  local attempts = redis.call('HINCRBY', dkey(id), 'attempts', 1)
  redis.call('HSET', dkey(id), 'token', token, 'lease_until', lease_until)
  redis.call('HSETNX', dkey(id), 'first_attempt_at', now)
  return {'claimed', attempts}
end
