-- sweep: the scheduler's periodic pass (single-flight, every few seconds):
--   due SCHEDULED -> PENDING + publish;
--   expired IN_FLIGHT leases (a worker died) -> PENDING + publish;
--   PENDING whose message was published before req.stale_before -> publish again.
-- ARGV[1]: {limit (per kind), stale_before (ms), lost_attempt (JSON text: the history entry
--           of an expired lease)}
-- Reply: {due, expired, republished}: how many of each. Decoded by core/ledger/replies.py
-- (swept) into a Swept.
local counts = {0, 0, 0}

local function requeue(id, from)
  local state, conn, rk = unpack(dmget(id, 'state', 'connection',
                                            'rk'))
  if state ~= from then return false end
  move(id, conn, from, State.pending)
  if head(rk) == id then publish(id) end
  return true
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled_index_key(), '-inf', now,
                               'LIMIT', 0, req.limit)) do
  redis.call('ZREM', scheduled_index_key(), id)
  ddel(id, 'due_at')
  if requeue(id, State.scheduled) then counts[1] = counts[1] + 1 end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight_index_key(), '-inf', now,
                               'LIMIT', 0, req.limit)) do
  redis.call('ZREM', inflight_index_key(), id)
  local conn = dget(id, 'connection')
  if requeue(id, State.in_flight) then
    ddel(id, 'token', 'lease_until')
    redis.call('RPUSH', attempts_key(id), req.lost_attempt)
    -- a probe that never reported back must not keep the circuit half-open forever
    if conn and redis.call('HGET', breaker_key(conn), 'probe') == id then
      redis.call('HDEL', breaker_key(conn), 'probe', 'probe_until')
    end
    counts[2] = counts[2] + 1
  end
end

-- the published deliveries wait in their ready sets (one per connection and object)
local left = req.limit
for _, ready in ipairs(redis.call('SMEMBERS', ready_sets_key())) do
  if left <= 0 then break end
  local stale = redis.call('ZRANGEBYSCORE', ready, '-inf', '(' .. req.stale_before,
                           'LIMIT', 0, left)
  if #stale == 0 and redis.call('EXISTS', ready) == 0 then
    redis.call('SREM', ready_sets_key(), ready)  -- listed again by its next publish
  end
  for _, id in ipairs(stale) do
    left = left - 1
    local state, rk = unpack(dmget(id, 'state', 'rk'))
    if state == State.pending and head(rk) == id then
      publish(id, ready)
      counts[3] = counts[3] + 1
    else
      redis.call('ZREM', ready, id)
    end
  end
end
return counts
