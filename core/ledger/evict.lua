-- evict: archived events leave Redis (core/ledger/cold.py: the archiver has written them to
-- the archive first), each with its deliveries, their attempts and actions, and its index
-- entries; only if it is still done for good and unchanged since the archiver read it, so
-- what leaves is exactly what the archive holds.
-- ARGV[1]: {events: [{id, since (its terminal index score, ms), terms (its search terms,
--           found again from its body: core/ledger/cold.py terms_of), digests, deliveries: [{id,
--           updated (its updated_at as read)}]}]}
-- Reply: per event, in order: 1 evicted, 0 kept (changed since it was read, or gone).
local out = {}
local terminal = terminal_index_key()

local function unchanged(ev, ids)
  if tonumber(redis.call('ZSCORE', terminal, ev.id)) ~= tonumber(ev.since) then return false end
  if #ids ~= #ev.deliveries then return false end
  for i, d in ipairs(ev.deliveries) do
    local state, updated = unpack(dmget(d.id, 'state', 'updated_at'))
    if ids[i] ~= d.id or not done_for_good(state) or updated ~= d.updated then return false end
  end
  return true
end

for _, ev in ipairs(req.events) do
  local source, ids = event_deliveries(ev.id)
  if source and unchanged(ev, ids) then
    for _, d in ipairs(ev.deliveries) do
      ddelete(d.id)
    end
    unindex_terms(ev.id, ev.terms, ev.digests)
    redis.call('DEL', event_key(ev.id))
    redis.call('ZREM', events_key(), ev.id)
    redis.call('ZREM', source_events_key(source), ev.id)
    redis.call('ZREM', terminal, ev.id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
