-- Claim a delivery for one attempt: PENDING -> IN_FLIGHT with a lease.
-- req: {id, lease_ms, token, max_wait_ms, rate: {interval_ms, burst_ms} or absent}
-- Returns one of:
--   {'skip', why}                stale or duplicate message (not pending, not its turn)
--   {'held'}                     the connection is paused: now HELD
--   {'superseded'}               older than what was already applied to the record
--   {'deferred', due_ms, why}    cooldown / circuit open / long rate wait: now SCHEDULED
--   {'wait', ms}                 rate limit: try again after ms (state unchanged)
--   {'claimed', attempts}        now IN_FLIGHT, owned by req.token
local id = req.id
local state, conn, rk, seq, occurred = unpack(redis.call('HMGET', dkey(id), 'state',
                                                         'connection', 'rk', 'seq',
                                                         'occurred_ms'))
if state ~= 'pending' then return {'skip', state or 'missing'} end
if head(rk) ~= id then
  -- Not this record's turn: it is published again when the writes before it finish.
  redis.call('ZREM', p .. ':idx:pending', id)
  return {'skip', 'waiting'}
end
-- newest_wins: an event older (by the source's timestamp) than the last one applied to this
-- record must not overwrite it
occurred = tonumber(occurred)
if occurred then
  local applied = tonumber(redis.call('HGET', rkmeta(rk), 'applied_ms'))
  if applied and occurred < applied then
    redis.call('ZREM', p .. ':idx:pending', id)
    move(id, conn, 'pending', 'superseded')
    redis.call('HSET', dkey(id), 'superseded_by_ms', applied)
    redis.call('ZREM', rkey(rk), id)
    advance(rk)
    return {'superseded'}
  end
end
if paused(conn) then
  redis.call('ZREM', p .. ':idx:pending', id)
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
  redis.call('HSET', bkey, 'state', 'half_open', 'probe', id, 'probe_until', now + req.lease_ms)
end

-- Rate limit shared by every worker (GCRA: one theoretical arrival time per connection).
if req.rate then
  local rlkey = ckey(conn, 'rl')
  local tat = math.max(tonumber(redis.call('GET', rlkey)) or now, now)
  local new_tat = tat + req.rate.interval_ms
  local allow_at = new_tat - req.rate.burst_ms
  if allow_at > now then
    local wait = allow_at - now
    if wait > req.max_wait_ms then
      schedule(id, conn, 'pending', now + wait)
      return {'deferred', now + wait, 'rate_limit'}
    end
    return {'wait', wait}
  end
  redis.call('SET', rlkey, new_tat, 'PX', math.ceil(new_tat - now + 1000))
end

local lease_until = now + req.lease_ms
move(id, conn, 'pending', 'in_flight')
redis.call('ZREM', p .. ':idx:pending', id)
redis.call('ZADD', p .. ':idx:inflight', lease_until, id)
local attempts = redis.call('HINCRBY', dkey(id), 'attempts', 1)
redis.call('HSET', dkey(id), 'token', req.token, 'lease_until', lease_until)
redis.call('HSETNX', dkey(id), 'first_attempt_at', now)
return {'claimed', attempts}
