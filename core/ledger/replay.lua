-- replay: operators' actions on dead letters: replay (a fresh run, with the record key the
-- current mapping gives) or discard (for good).
-- ARGV[1]: {action (OperatorAction: replay | discard), items: [{id, rk}], note (JSON text,
--           kept in the delivery's actions)}
-- Reply: per item, in order, 'ok' or what prevented the action (the delivery's state, or
-- Reason.missing).
local out = {}
for _, item in ipairs(req.items) do
  local id = item.id
  local state, conn, category =
    unpack(redis.call('HMGET', delivery_key(id), 'state', 'connection', 'dead_category'))
  if state ~= State.dead then
    out[#out + 1] = state or Reason.missing
  else
    redis.call('ZREM', dead_index_key(), id)
    -- the dead_letters alert's group shrinks (never below zero: dead letters from before
    -- the counts existed were never counted)
    if category and tonumber(redis.call('HGET', dead_counts_key(conn), category) or 0) > 0 then
      redis.call('HINCRBY', dead_counts_key(conn), category, -1)
    end
    redis.call('RPUSH', actions_key(id), req.note)
    if req.action == OperatorAction.discard then
      move(id, conn, State.dead, State.discarded)
    else
      -- a replay is a fresh run with the current mapping: new place in its record's queue,
      -- a fresh give-up clock; the attempt history is kept
      redis.call('HDEL', delivery_key(id), 'dead_at', 'dead_category', 'dead_error',
                 'dead_record', 'first_attempt_at', 'paused_ms', 'due_at')
      local seq = redis.call('INCR', seq_key())
      redis.call('HSET', delivery_key(id), 'attempts', 0, 'seq', seq, 'rk', item.rk,
                 'replayed_at', now)
      redis.call('ZADD', record_queue_key(item.rk), seq, id)
      if paused(conn) then
        hold(id, conn, State.dead, seq)
      else
        move(id, conn, State.dead, State.pending)
        if head(item.rk) == id then publish(id) end
      end
    end
    out[#out + 1] = 'ok'
  end
end
return out
