-- edit: edit-and-replay one dead letter. The edited event is kept beside the original (a new
-- event hash whose `edit_of` names the event it edits; the original is never changed), the
-- delivery reads the edited one from now on (`original_event_id` keeps the first) and runs
-- again like a replay.
-- ARGV[1]: {id (the delivery), dead_at (ms: as the operator saw it), rk (from the current
--           mapping and the edited body), event: {id, fields (flat: the edited event's
--           hash)}, note (JSON text, kept in the delivery's actions and the action log)}
-- Reply: 'ok', or what prevented it (the delivery's state, Reason.missing, or
-- Reason.changed: it was replayed or edited since the operator looked).
local id = req.id
local state, conn, dead_at, event_id, original = unpack(dmget(id, 'state', 'connection',
  'dead_at', 'event_id', 'original_event_id'))
if state ~= State.dead then return state or Reason.missing end
if req.dead_at and tostring(req.dead_at) ~= tostring(dead_at) then return Reason.changed end
redis.call('HSET', event_key(req.event.id), unpack(req.event.fields))
dset(id, 'event_id', req.event.id,
           'original_event_id', original or event_id)
redis.call('RPUSH', actions_key(id), req.note)
rerun_dead(id, conn, req.rk)
log_action(req.note, {id})
return 'ok'
