-- purge: erase events from Redis (`crmhub events purge`: a person's data), each with its
-- deliveries, their attempts and actions and its index entries; not one with a delivery still
-- on its way (pending, in flight, scheduled, held): that is a write the hub promised, so it
-- is reported and kept. A dead letter is erased with its event (it leaves the dead index).
-- ARGV[1]: {events: [{id, terms (its search terms, found again from its body:
--           core/ledger/cold.py terms_of), digests (theirs: common.lua search_entry)}]}
-- Reply: per event, in order: 'ok', Reason.missing, or the state of the delivery that is
-- still on its way.
local out = {}
for _, ev in ipairs(req.events) do
  local id = ev.id
  local source, ids = event_deliveries(id)
  if not source then
    out[#out + 1] = Reason.missing
  else
    local busy = nil
    local found = {}
    for i, did in ipairs(ids) do
      found[i] = dmget(did, 'state', 'connection')
      local state = found[i][1]
      if state and state ~= State.dead and not done_for_good(state) then busy = state end
    end
    if busy then
      out[#out + 1] = busy
    else
      for i, did in ipairs(ids) do
        local state, conn = unpack(found[i])
        if state then
          -- the counts are of every delivery the ledger has kept, hot or archived
          redis.call('HINCRBY', counts_key(conn), state, -1)
          if state == State.dead then unindex_dead(did) end
        end
        ddelete(did)
      end
      unindex_terms(id, ev.terms, ev.digests)
      redis.call('DEL', event_key(id))
      redis.call('ZREM', events_key(), id)
      redis.call('ZREM', source_events_key(source), id)
      redis.call('ZREM', terminal_index_key(), id)
      out[#out + 1] = 'ok'
    end
  end
end
return out
