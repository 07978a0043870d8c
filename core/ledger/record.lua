-- Record a batch of webhook events and their deliveries, deduplicated, in one atomic step.
-- req: {ttl, events: [{dedupe, id, source, received, fields, echo: {ref, pairs} or absent,
--                      deliveries: [{id, connection, object, rk, fields}]}]}
-- ARGV[2k], ARGV[2k+1]: event k's body and headers JSON, as plain strings.
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
for index, ev in ipairs(req.events) do
  -- each event's body and headers come as plain arguments after the JSON request
  table.insert(ev.fields, 'body'); table.insert(ev.fields, ARGV[2 * index])
  table.insert(ev.fields, 'headers'); table.insert(ev.fields, ARGV[2 * index + 1])
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
      -- one write of the delivery's hash, state included (this runs for every webhook)
      local seq = redis.call('INCR', p .. ':seq')
      redis.call('ZADD', rkey(d.rk), seq, d.id)
      local held = paused(d.connection)
      local first = not held and head(d.rk) == d.id
      local state = held and 'held' or 'pending'
      local tag = ''
      if held then
        redis.call('ZADD', ckey(d.connection, 'held'), seq, d.id)
      elseif first then
        tag = publish(d.id, p .. ':ready:' .. d.connection .. ':' .. d.object, true)
      end
      redis.call('HSET', dkey(d.id), 'seq', seq, 'rk', d.rk, 'state', state, 'updated_at', now,
                 held and 'held_at' or 'published_at', now, 'msg', tag, unpack(d.fields))
      redis.call('HINCRBY', ckey(d.connection, 'counts'), state, 1)
    end
    out[#out + 1] = ev.id; out[#out + 1] = #ev.deliveries; out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
