-- Claim more deliveries to send in one batch with one already claimed by this worker.
-- Only published PENDING deliveries of the same connection and object qualify, each only if
-- it is its record's next write (so per-record order holds), without a further rate token
-- (the batch is one request). req: {conn, object, limit, token, lease_ms}
-- Returns a flat array: {delivery_id, attempts, ...} for each one claimed.
local out = {}
local candidates = redis.call('ZRANGE', p .. ':ready:' .. req.conn .. ':' .. req.object, 0,
                              req.limit * 2)
for _, id in ipairs(candidates) do
  if #out >= req.limit * 2 then break end
  local result = claim_one(id, req.token, req.lease_ms, nil, 0)
  if result[1] == 'claimed' then
    out[#out + 1] = id
    out[#out + 1] = result[2]
  end
end
return out
