-- Claim more deliveries to send in one batch with one already claimed by this worker.
-- Only published PENDING deliveries of the same connection and object qualify, each only if
-- it is its record's next write (so per-record order holds), without a further rate token
-- (the batch is one request). req: {conn, object, limit, token, lease_ms}
-- Each one claimed has its queued message withdrawn (LREM from the consuming end, where the
-- oldest messages are): it would only be a task that finds the delivery taken, and a drained
-- backlog would leave a queue of those in front of new events.
-- (How many were withdrawn is counted at <prefix>:msgwithdrawn, beside msgseq, the published.)
-- Returns a flat array: {delivery_id, attempts, ...} for each one claimed.
local out = {}
local withdrawn = 0
local candidates = redis.call('ZRANGE', p .. ':ready:' .. req.conn .. ':' .. req.object, 0,
                              req.limit * 2)
for _, id in ipairs(candidates) do
  if #out >= req.limit * 2 then break end
  local result = claim_one(id, req.token, req.lease_ms, nil, 0)
  if result[1] == 'claimed' then
    out[#out + 1] = id
    out[#out + 1] = result[2]
    local tag = redis.call('HGET', dkey(id), 'msg')
    if tag and tag ~= '' then
      withdrawn = withdrawn + redis.call('LREM', req.queue, -1, message(id, tag))
    end
  end
end
if withdrawn > 0 then redis.call('INCRBY', p .. ':msgwithdrawn', withdrawn) end
return out
