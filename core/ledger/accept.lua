-- accept: take a batch of webhook events and their deliveries into the ledger, deduplicated,
-- in one atomic step (the receiver answers 2xx only after it), publishing each delivery that
-- is its record's next write.
-- ARGV[1]: {ttl (the dedupe window, s),
--           events: [{dedupe (its dedupe key), legacy_dedupe (as named before), id, source, received (ms), fields (the event
--                     hash's fields and values, flat), body_field (`body`, or `bodyz` when
--                     the body comes compressed: core/ledger/bodies.py), headers_apart
--                     (false when the headers are compressed with the body), digests (of what
--                     operators can search it by: core/ledger/search.py), echo: {ref, pairs}
--                     or absent,
--                     deliveries: [{id, connection, object, rk, fields (flat), folded (the
--                                   event's first: held in its hash, common.lua dhome)}]}]}
-- ARGV[2k], ARGV[2k+1]: event k's body (as received, or compressed) and headers JSON (empty
-- when compressed with the body), as plain strings.
-- Reply: flat, 4 per event: {event_id, deliveries, duplicate (0|1), echo (0|1)} (a duplicate
-- reports the first event's id). Decoded by core/ledger/replies.py (accepted).
local out = {}

-- An event that repeats exactly what the hub wrote to that record (within the window).
local function is_echo(echo)
  if not echo or #echo.pairs == 0 then return false end
  local key = echo_key(echo.ref)
  for _, pair in ipairs(echo.pairs) do
    if redis.call('HGET', key, pair[1]) ~= pair[2] then return false end
  end
  return true
end

local function index_terms(ev)
  for _, digest in ipairs(ev.digests) do
    redis.call('ZADD', search_key(), 0, search_entry(digest, ev.id))
  end
end

-- A dedupe key holds the first event's id as bytes (common.lua id_bytes), so the value fits
-- the smallest allocation a string gets (a dedupe key is kept for the whole window: README,
-- "Memory"); core/ledger/replies.py (accepted) spells it back.

local stats = stats_key(StatsHash.webhooks)
for index, ev in ipairs(req.events) do
  -- each event's body and headers come as plain arguments after the JSON request
  table.insert(ev.fields, ev.body_field); table.insert(ev.fields, ARGV[2 * index])
  if ev.headers_apart then
    table.insert(ev.fields, 'headers'); table.insert(ev.fields, ARGV[2 * index + 1])
  end
  local first = redis.call('GET', ev.dedupe) or redis.call('GET', ev.legacy_dedupe)
  if first then
    redis.call('HINCRBY', stats, ev.source .. '|' .. WebhookOutcome.duplicate, 1)
    out[#out + 1] = first; out[#out + 1] = 0; out[#out + 1] = 1; out[#out + 1] = 0
  elseif is_echo(ev.echo) then
    redis.call('HINCRBY', stats, ev.source .. '|' .. WebhookOutcome.echo, 1)
    redis.call('SET', ev.dedupe, id_bytes(ev.id), 'EX', req.ttl)
    redis.call('HSET', event_key(ev.id), unpack(ev.fields))
    redis.call('HSET', event_key(ev.id), 'state', EventState.echo, 'deliveries', '')
    redis.call('ZADD', events_key(), ev.received, ev.id)
    redis.call('ZADD', source_events_key(ev.source), ev.received, ev.id)
    index_terms(ev)
    redis.call('ZADD', terminal_index_key(), now, ev.id)  -- done for good already
    out[#out + 1] = ev.id; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 1
  else
    redis.call('HINCRBY', stats, ev.source .. '|' .. WebhookOutcome.accepted, 1)
    redis.call('SET', ev.dedupe, id_bytes(ev.id), 'EX', req.ttl)
    redis.call('HSET', event_key(ev.id), unpack(ev.fields))
    redis.call('ZADD', events_key(), ev.received, ev.id)
    redis.call('ZADD', source_events_key(ev.source), ev.received, ev.id)
    index_terms(ev)
    if #ev.deliveries == 0 then  -- unrouted: done for good already
      redis.call('ZADD', terminal_index_key(), now, ev.id)
    end
    for _, d in ipairs(ev.deliveries) do
      -- one write of the delivery's hash, state included (this runs for every webhook)
      local seq = redis.call('INCR', seq_key())
      redis.call('ZADD', rq_key(d.rk), seq, d.id)
      local held = paused(d.connection)
      local first = not held and head(d.rk) == d.id
      local state = held and State.held or State.pending
      local tag = ''
      if held then
        redis.call('ZADD', held_key(d.connection), seq, d.id)
      elseif first then
        tag = publish(d.id, ready_key(d.connection, d.object), true)
      end
      -- (no updated_at: it reads as created_at until the delivery changes, common.lua; no
      -- published_at: its ready set's score is when it was published)
      local fields = {'seq', seq, 'rk', d.rk, 'state', state, 'msg', tag, unpack(d.fields)}
      if held then fields[#fields + 1] = 'held_at'; fields[#fields + 1] = now end
      if d.folded then  -- the event's first delivery: held in its hash (common.lua dhome)
        for i = 1, #fields, 2 do fields[i] = folded_name(fields[i]) end
        redis.call('HSET', event_key(ev.id), unpack(fields))
      else
        redis.call('HSET', delivery_key(d.id), unpack(fields))
      end
      redis.call('HINCRBY', counts_key(d.connection), state, 1)
    end
    out[#out + 1] = ev.id; out[#out + 1] = #ev.deliveries; out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
