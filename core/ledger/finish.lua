-- finish: apply an attempt's outcome, IN_FLIGHT -> DELIVERED | SUPERSEDED | DEAD | SCHEDULED
-- | HELD, if the caller still holds the lease.
-- ARGV[1]: {id, token, outcome (AttemptOutcome: delivered | superseded | dead | retry |
--           deferred (429: no attempt used) | held), attempt (JSON text, for the history),
--           due (ms: retry, deferred), error, category (DeadCategory, dead),
--           dead_letter (JSON text: what an operator needs to fix it, dead; stored as
--           dead_record), transient (counts toward the breaker), cooldown_until (ms),
--           pause (JSON text, held), breaker: {threshold, open_ms, max_open_ms},
--           applied_ttl (s: how long a record's newest_wins timestamp is kept),
--           buckets (the latency histogram's upper bounds, s: LATENCY_BUCKETS)}
-- Reply: {'lost'} when the lease was lost (another worker owns the delivery now), else
-- {'ok', newly_paused (0|1)}. Decoded by core/ledger/replies.py (finished) into a Finish.
local id = req.id
local state, token, conn, rk, seq, occurred, event_id, created =
  unpack(dmget(id, 'state', 'token', 'connection', 'rk', 'seq', 'occurred_ms',
                    'event_id', 'created_at'))
if state ~= State.in_flight or token ~= req.token then return {'lost'} end

redis.call('RPUSH', attempts_key(id), req.attempt)
redis.call('HINCRBY', stats_key(StatsHash.attempts), conn .. '|' .. req.outcome, 1)
redis.call('LTRIM', attempts_key(id), -100, -1)
redis.call('ZREM', inflight_index_key(), id)
ddel(id, 'token', 'lease_until')
-- the attempt's place in its connection's rolling rate window now counts from its finish
redis.call('ZADD', rate_window_key(conn), 'XX', now, id .. '|' .. req.token)

local last = last_key(conn)
local bkey = breaker_key(conn)
local function breaker_failure()
  local b = req.breaker
  local bstate, open_ms = unpack(redis.call('HMGET', bkey, 'state', 'open_ms'))
  local failures = redis.call('HINCRBY', bkey, 'failures', 1)
  if bstate == CircuitState.half_open or failures >= b.threshold then
    local next_ms = b.open_ms
    if bstate == CircuitState.half_open and open_ms then
      next_ms = math.min(b.max_open_ms, tonumber(open_ms) * 2)
    end
    redis.call('HSET', bkey, 'state', CircuitState.open, 'open_until', now + next_ms,
               'open_ms', next_ms)
    redis.call('HDEL', bkey, 'probe', 'probe_until')
  end
end
local function failed()
  redis.call('HSET', last, 'failure_at', now, 'failure', req.error or '')
end
local function terminal(to)
  move(id, conn, State.in_flight, to)
  rq_remove(rk, id)
  advance(rk)
end

local newly_paused = 0
local outcome = req.outcome
if outcome == AttemptOutcome.delivered or outcome == AttemptOutcome.superseded then
  terminal(outcome)
  settle(event_id)
  redis.call('DEL', bkey)
  if outcome == AttemptOutcome.delivered then
    redis.call('HSET', last, 'success_at', now)
    -- receipt-to-write latency (the histogram's buckets: req.buckets, seconds)
    local took = now - (tonumber(created) or now)
    local bucket = '+Inf'
    for _, le in ipairs(req.buckets or {}) do
      if took <= le * 1000 then bucket = tostring(le); break end
    end
    local latency = stats_key(StatsHash.latency)
    redis.call('HINCRBY', latency, conn .. '|' .. bucket, 1)
    redis.call('HINCRBY', latency, conn .. '|sum_ms', math.max(0, took))
    occurred = tonumber(occurred)
    if occurred then
      local applied = tonumber(redis.call('HGET', record_applied_key(rk), 'applied_ms'))
      if not applied or occurred > applied then
        redis.call('HSET', record_applied_key(rk), 'applied_ms', occurred)
      end
      -- kept as long as a sender's repeat is recognised (the dedupe window), not forever:
      -- Redis holds nothing per record once its events are archived and the window is over
      redis.call('EXPIRE', record_applied_key(rk), req.applied_ttl)
    end
  end
elseif outcome == AttemptOutcome.dead then
  terminal(State.dead)
  dset(id, 'dead_at', now, 'dead_category', req.category,
             'dead_error', req.error or '', 'dead_record', req.dead_letter or '')
  index_dead(id, now)  -- and counted for the dead_letters alert
  if req.transient then breaker_failure() else redis.call('DEL', bkey) end
  failed()
elseif outcome == AttemptOutcome.retry then
  schedule(id, conn, State.in_flight, req.due)
  -- only the target's failures count toward its breaker, not a bug in the hub
  if req.transient then breaker_failure() end
  failed()
elseif outcome == AttemptOutcome.deferred then
  dincr(id, 'attempts', -1)
  schedule(id, conn, State.in_flight, req.due)
  local cd = tonumber(redis.call('GET', cooldown_key(conn))) or 0
  if req.cooldown_until > cd then
    redis.call('SET', cooldown_key(conn), req.cooldown_until,
               'PX', math.max(1, req.cooldown_until - now))
  end
  failed()
elseif outcome == AttemptOutcome.held then
  if redis.call('SET', pause_key(conn), req.pause, 'NX') then
    newly_paused = 1
    -- kept after a resume: a pause shorter than the alert check's interval still alerts
    redis.call('HSET', last, 'paused_at', now, 'paused_by', tostring(cjson.decode(req.pause).by))
  end
  hold(id, conn, State.in_flight, seq)
  failed()
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
return {'ok', newly_paused}
