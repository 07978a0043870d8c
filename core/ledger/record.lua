-- Record a batch of webhook events and their deliveries, deduplicated, in one atomic step.
-- ARGV[1]: JSON {prefix, now, ttl, queue, events: [{dedupe, id, source, received, fields,
--               deliveries: [{id, connection, fields, message}]}]}
-- Returns a flat array: per event {event_id, deliveries_count, duplicate(0|1)}.
-- Deliveries for a paused connection are HELD (in arrival order) instead of published.
local req = cjson.decode(ARGV[1])
local p = req.prefix
local out = {}
for _, ev in ipairs(req.events) do
  local first = redis.call('GET', ev.dedupe)
  if first then
    out[#out + 1] = first; out[#out + 1] = 0; out[#out + 1] = 1
  else
    redis.call('SET', ev.dedupe, ev.id, 'EX', req.ttl)
    local ekey = p .. ':evt:' .. ev.id
    redis.call('HSET', ekey, unpack(ev.fields))
    redis.call('ZADD', p .. ':events', ev.received, ev.id)
    redis.call('ZADD', p .. ':events:src:' .. ev.source, ev.received, ev.id)
    for _, d in ipairs(ev.deliveries) do
      local dkey = p .. ':dlv:' .. d.id
      local state = 'pending'
      if redis.call('EXISTS', p .. ':conn:' .. d.connection .. ':pause') == 1 then
        state = 'held'
        local seq = redis.call('INCR', p .. ':seq')
        redis.call('ZADD', p .. ':conn:' .. d.connection .. ':held', seq, d.id)
      else
        redis.call('ZADD', p .. ':idx:pending', req.now, d.id)
        redis.call('LPUSH', req.queue, d.message)
      end
      redis.call('HSET', dkey, 'state', state, 'updated_at', req.now, unpack(d.fields))
      redis.call('HINCRBY', p .. ':conn:' .. d.connection .. ':counts', state, 1)
    end
    out[#out + 1] = ev.id; out[#out + 1] = #ev.deliveries; out[#out + 1] = 0
  end
end
return out
