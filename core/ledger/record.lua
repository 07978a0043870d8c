-- Record a batch of webhook events and their deliveries, deduplicated, in one atomic step.
-- req: {ttl, events: [{dedupe, id, source, received, fields, echo: {ref, pairs} or absent,
--                      deliveries: [{id, connection, rk, fields}]}]}
-- Returns a flat array: per event {event_id, deliveries_count, duplicate(0|1), echo(0|1)}.
local out = {}

-- An event that repeats exactly what the hub wrote to that record (within the window).
local function is_echo(echo)
  if not echo or #echo.pairs == 0 then return false end
  local key = p .. ':echo:' .. echo.ref
  for _, pair in ipairs(echo.pairs) do
    if redis.call('HGET', key, pair[1]) ~= pair[2] then return false end
  end
  return true
end

local stats = p .. ':stats:webhooks'
for _, ev in ipairs(req.events) do
  local first = redis.call('GET', ev.dedupe)
  if first then
    redis.call('HINCRBY', stats, ev.source .. '|duplicate', 1)
    out[#out + 1] = first; out[#out + 1] = 0; out[#out + 1] = 1; out[#out + 1] = 0
  elseif is_echo(ev.echo) then
    redis.call('HINCRBY', stats, ev.source .. '|echo', 1)
    redis.call('SET', ev.dedupe, ev.id, 'EX', req.ttl)
    redis.call('HSET', p .. ':evt:' .. ev.id, unpack(ev.fields))
    redis.call('HSET', p .. ':evt:' .. ev.id, 'state', 'echo', 'deliveries', '')
    redis.call('ZADD', p .. ':events', ev.received, ev.id)
    redis.call('ZADD', p .. ':events:src:' .. ev.source, ev.received, ev.id)
    out[#out + 1] = ev.id; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 1
  else
    redis.call('HINCRBY', stats, ev.source .. '|accepted', 1)
    redis.call('SET', ev.dedupe, ev.id, 'EX', req.ttl)
    redis.call('HSET', p .. ':evt:' .. ev.id, unpack(ev.fields))
    redis.call('ZADD', p .. ':events', ev.received, ev.id)
    redis.call('ZADD', p .. ':events:src:' .. ev.source, ev.received, ev.id)
    for _, d in ipairs(ev.deliveries) do
      local seq = redis.call('INCR', p .. ':seq')
      redis.call('HSET', dkey(d.id), 'seq', seq, 'rk', d.rk, unpack(d.fields))
      redis.call('ZADD', rkey(d.rk), seq, d.id)
      if paused(d.connection) then
        hold(d.id, d.connection, nil, seq)
      else
        move(d.id, d.connection, nil, 'pending')
        if head(d.rk) == d.id then publish(d.id) end
      end
    end
    out[#out + 1] = ev.id; out[#out + 1] = #ev.deliveries; out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
