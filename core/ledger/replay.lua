-- Operator actions on dead letters. req: {action: replay|discard, items: [{id, rk}],
-- note (JSON text)}. Returns, per item, 'ok' or the state that prevented the action.
local out = {}
for _, item in ipairs(req.items) do
  local id = item.id
  local state, conn, old_rk = unpack(redis.call('HMGET', dkey(id), 'state', 'connection', 'rk'))
  if state ~= 'dead' then
    out[#out + 1] = state or 'missing'
  else
    redis.call('ZREM', p .. ':idx:dead', id)
    redis.call('RPUSH', dkey(id) .. ':actions', req.note)
    if req.action == 'discard' then
      move(id, conn, 'dead', 'discarded')
    else
      -- a replay is a fresh run with the current mapping: new place in its record's queue,
      -- a fresh give-up clock; the attempt history is kept
      redis.call('HDEL', dkey(id), 'dead_at', 'dead_category', 'dead_error', 'dead_record',
                 'first_attempt_at', 'paused_ms', 'due_at')
      local seq = redis.call('INCR', p .. ':seq')
      redis.call('HSET', dkey(id), 'attempts', 0, 'seq', seq, 'rk', item.rk)
      redis.call('ZADD', rkey(item.rk), seq, id)
      if paused(conn) then
        hold(id, conn, 'dead', seq)
      else
        move(id, conn, 'dead', 'pending')
        if head(item.rk) == id then publish(id) end
      end
    end
    out[#out + 1] = 'ok'
  end
end
return out
