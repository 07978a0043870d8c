-- Record an attempt's outcome: IN_FLIGHT -> DELIVERED | SUPERSEDED | DEAD | SCHEDULED | HELD.
-- req: {id, token, outcome, attempt (JSON text), due, error, category, record, transient,
--       cooldown_until, pause (JSON text), breaker: {threshold, open_ms, max_open_ms}}
-- outcome: delivered | superseded | dead | retry | deferred (429: no attempt used) | held
-- Returns {'lost'} when the lease was lost (another worker owns the delivery now), else
-- {'ok', newly_paused (0|1)}.
local id = req.id
local d = dkey(id)
local state, token, conn, rk, seq, occurred =
  unpack(redis.call('HMGET', d, 'state', 'token', 'connection', 'rk', 'seq', 'occurred_ms'))
if state ~= 'in_flight' or token ~= req.token then return {'lost'} end

redis.call('RPUSH', d .. ':attempts', req.attempt)
redis.call('HINCRBY', p .. ':stats:attempts', conn .. '|' .. req.outcome, 1)
redis.call('LTRIM', d .. ':attempts', -100, -1)
redis.call('ZREM', p .. ':idx:inflight', id)
redis.call('HDEL', d, 'token', 'lease_until')

local last = ckey(conn, 'last')
local bkey = ckey(conn, 'breaker')
local function breaker_failure()
  local b = req.breaker
  local bstate, open_ms = unpack(redis.call('HMGET', bkey, 'state', 'open_ms'))
  local failures = redis.call('HINCRBY', bkey, 'failures', 1)
  if bstate == 'half_open' or failures >= b.threshold then
    local next_ms = b.open_ms
    if bstate == 'half_open' and open_ms then
      next_ms = math.min(b.max_open_ms, tonumber(open_ms) * 2)
    end
    redis.call('HSET', bkey, 'state', 'open', 'open_until', now + next_ms, 'open_ms', next_ms)
    redis.call('HDEL', bkey, 'probe', 'probe_until')
  end
end
local function failed()
  redis.call('HSET', last, 'failure_at', now, 'failure', req.error or '')
end
local function terminal(to)
  move(id, conn, 'in_flight', to)
  redis.call('ZREM', rkey(rk), id)
  advance(rk)
end

local newly_paused = 0
local outcome = req.outcome
if outcome == 'delivered' or outcome == 'superseded' then
  terminal(outcome)
  redis.call('DEL', bkey)
  if outcome == 'delivered' then
    redis.call('HSET', last, 'success_at', now)
    occurred = tonumber(occurred)
    if occurred then
      local applied = tonumber(redis.call('HGET', rkmeta(rk), 'applied_ms'))
      if not applied or occurred > applied then
        redis.call('HSET', rkmeta(rk), 'applied_ms', occurred)
      end
    end
  end
elseif outcome == 'dead' then
  terminal('dead')
  redis.call('HSET', d, 'dead_at', now, 'dead_category', req.category,
             'dead_error', req.error or '', 'dead_record', req.record or '')
  redis.call('ZADD', p .. ':idx:dead', now, id)
  if req.transient then breaker_failure() else redis.call('DEL', bkey) end
  failed()
elseif outcome == 'retry' then
  schedule(id, conn, 'in_flight', req.due)
  -- only the target's failures count toward its breaker, not a bug in the hub
  if req.transient then breaker_failure() end
  failed()
elseif outcome == 'deferred' then
  redis.call('HINCRBY', d, 'attempts', -1)
  schedule(id, conn, 'in_flight', req.due)
  local cd = tonumber(redis.call('GET', ckey(conn, 'cooldown'))) or 0
  if req.cooldown_until > cd then
    redis.call('SET', ckey(conn, 'cooldown'), req.cooldown_until,
               'PX', math.max(1, req.cooldown_until - now))
  end
  failed()
elseif outcome == 'held' then
  if redis.call('SET', ckey(conn, 'pause'), req.pause, 'NX') then newly_paused = 1 end
  hold(id, conn, 'in_flight', seq)
  failed()
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
return {'ok', newly_paused}
