-- claim_batch: claim more deliveries to send in one batch with one this worker claimed.
-- Only published PENDING deliveries of the same connection and object qualify, each only if
-- it is its record's next write (so per-record order holds), without a further rate token
-- (the batch is one request).
-- Each one claimed has its queued message withdrawn (LREM from the consuming end, where the
-- oldest messages are): it would only be a task that finds the delivery taken, and a drained
-- backlog would leave a queue of those in front of new events. How many were withdrawn is
-- counted beside how many were published (withdrawn_key, published_key).
-- ARGV[1]: {conn, object, limit, token, lease_ms}
-- Reply: flat, 2 per delivery claimed: {delivery_id, attempts, ...}. Decoded by
-- core/ledger/replies.py (batch_claimed).
local out = {}
local withdrawn = 0
local candidates = redis.call('ZRANGE', ready_key(req.conn, req.object), 0, req.limit * 2)
for _, id in ipairs(candidates) do
  if #out >= req.limit * 2 then break end
  local result = claim_one(id, req.token, req.lease_ms, nil, 0)
  if result[1] == ClaimStatus.claimed then
    out[#out + 1] = id
    out[#out + 1] = result[2]
    local tag = dget(id, 'msg')
    if tag and tag ~= '' then
      withdrawn = withdrawn + redis.call('LREM', req.queue, -1, message(id, tag))
    end
  end
end
if withdrawn > 0 then redis.call('INCRBY', withdrawn_key(), withdrawn) end
return out
