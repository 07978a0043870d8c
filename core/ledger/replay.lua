-- replay: operators' actions on dead letters: replay (a fresh run, with the record key the
-- current mapping gives) or discard (for good).
-- ARGV[1]: {action (OperatorAction: replay | discard), items: [{id, rk, dead_at (ms; when
--           given, a delivery that died again since is left alone)}], note (JSON text,
--           kept in the delivery's actions and, with the ids done, in the action log),
--           op (a bulk operation's id, whose `done` and `applied` count this call's items)}
-- Reply: per item, in order, 'ok' or what prevented the action (the delivery's state, or
-- Reason.missing, or Reason.changed).
local out = {}
local done = {}
for _, item in ipairs(req.items) do
  local id = item.id
  local state, conn, dead_at = unpack(dmget(id, 'state',
                                                 'connection', 'dead_at'))
  if state ~= State.dead then
    out[#out + 1] = state or Reason.missing
  elseif item.dead_at and tostring(item.dead_at) ~= tostring(dead_at) then
    -- replayed (or edited) and dead again since this request chose it: not twice
    out[#out + 1] = Reason.changed
  else
    redis.call('RPUSH', actions_key(id), req.note)
    if req.action == OperatorAction.discard then
      unindex_dead(id)
      move(id, conn, State.dead, State.discarded)
      settle(dget(id, 'event_id'))
    else
      rerun_dead(id, conn, item.rk)
    end
    out[#out + 1] = 'ok'
    done[#done + 1] = id
  end
end
if #done > 0 then log_action(req.note, done) end
if req.op then
  redis.call('HINCRBY', operation_key(req.op), 'done', #req.items)
  redis.call('HINCRBY', operation_key(req.op), 'applied', #done)
end
return out
