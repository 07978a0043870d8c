-- The scheduler's sweep (single-flight, run every few seconds):
--   due SCHEDULED -> PENDING + publish;
--   expired IN_FLIGHT leases (a worker died) -> PENDING + publish;
--   PENDING whose message was published before req.stale_before -> publish again.
-- req: {limit, stale_before, lost_attempt (JSON text)}. Returns {due, expired, republished}.
local counts = {0, 0, 0}

local function requeue(id, from)
  local state, conn, rk = unpack(redis.call('HMGET', dkey(id), 'state', 'connection', 'rk'))
  if state ~= from then return false end
  move(id, conn, from, 'pending')
  if head(rk) == id then publish(id) end
  return true
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':idx:scheduled', '-inf', now,
                               'LIMIT', 0, req.limit)) do
  redis.call('ZREM', p .. ':idx:scheduled', id)
  redis.call('HDEL', dkey(id), 'due_at')
  if requeue(id, 'scheduled') then counts[1] = counts[1] + 1 end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':idx:inflight', '-inf', now,
                               'LIMIT', 0, req.limit)) do
  redis.call('ZREM', p .. ':idx:inflight', id)
  local conn = redis.call('HGET', dkey(id), 'connection')
  if requeue(id, 'in_flight') then
    redis.call('HDEL', dkey(id), 'token', 'lease_until')
    redis.call('RPUSH', dkey(id) .. ':attempts', req.lost_attempt)
    -- a probe that never reported back must not keep the circuit half-open forever
    if conn and redis.call('HGET', ckey(conn, 'breaker'), 'probe') == id then
      redis.call('HDEL', ckey(conn, 'breaker'), 'probe', 'probe_until')
    end
    counts[2] = counts[2] + 1
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':idx:pending', '-inf',
                               '(' .. req.stale_before, 'LIMIT', 0, req.limit)) do
  local state, rk = unpack(redis.call('HMGET', dkey(id), 'state', 'rk'))
  if state == 'pending' and head(rk) == id then
    publish(id)
    counts[3] = counts[3] + 1
  else
    unpublish(id)
  end
end
return counts
