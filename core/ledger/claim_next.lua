-- claim_next: the drain (workers/delivery.py). A task that has finished its own delivery takes
-- the next ready delivery of the same connection, so that one Celery task writes several and
-- Celery's per-message cost is paid once for them.
-- The candidates are the connection's published PENDING deliveries (its ready sets, one per
-- object), oldest publish first, and each goes through claim_one, as its own message would:
-- only its record's next write is ever in a ready set (a record with a write in flight
-- elsewhere has none there), an older event than the one applied is superseded, the rate
-- limit takes a token.
-- The drain stops, leaving the deliveries as they are for their own messages, when the
-- connection is paused, cooling down after a 429, its circuit is not closed, or the rate limit
-- has no token now (claim_one answers wait: nothing changed).
-- A delivery claimed (or superseded, or found not to be its record's turn) has its queued
-- message withdrawn, as claim_batch.lua does: it would only be a task that finds nothing to do.
-- ARGV[1]: {conn, objects: [object, ...], token, lease_ms, scan (candidates looked at, at most),
--           rates: {connection: rate parameters} (as claim.lua's) or absent}
-- Reply: {ClaimStatus.claimed, attempts, delivery, event} (the last two flat HGETALL arrays, as
-- claim.lua's with_data) | {ClaimStatus.wait, ms} | {ClaimStatus.skip, Reason}: paused,
-- cooldown, circuit_open, none_ready. Decoded by core/ledger/replies.py (next_claimed).
local conn = req.conn
if paused(conn) then return {ClaimStatus.skip, Reason.paused} end
local cooldown = tonumber(redis.call('GET', cooldown_key(conn)))
if cooldown and cooldown > now then return {ClaimStatus.skip, Reason.cooldown} end
local bstate = redis.call('HGET', breaker_key(conn), 'state')
if bstate == CircuitState.open or bstate == CircuitState.half_open then
  return {ClaimStatus.skip, Reason.circuit_open}  -- one probe at a time: its own message's
end

-- the oldest published deliveries across the connection's ready sets
local candidates = {}
for _, obj in ipairs(req.objects) do
  local found = redis.call('ZRANGE', ready_key(conn, obj), 0, req.scan - 1, 'WITHSCORES')
  for i = 1, #found, 2 do
    candidates[#candidates + 1] = {found[i], tonumber(found[i + 1])}
  end
end
table.sort(candidates, function(a, b) return a[2] < b[2] end)

local function withdraw(id)
  local tag = dget(id, 'msg')
  if tag and tag ~= '' and redis.call('LREM', req.queue, -1, message(id, tag)) > 0 then
    redis.call('INCR', withdrawn_key())
  end
end

local rate = req.rates and req.rates[conn]
for i = 1, math.min(#candidates, req.scan) do
  local id = candidates[i][1]
  -- never deferred here: a rate wait answers wait (max_wait_ms is unbounded), state unchanged
  local answer = claim_one(id, req.token, req.lease_ms, rate, math.huge)
  local status = answer[1]
  if status == ClaimStatus.wait then return answer end
  if status == ClaimStatus.claimed then
    withdraw(id)
    local event_id = dget(id, 'event_id')
    return {answer[1], answer[2], dgetall(id),
            event_id and redis.call('HGETALL', event_key(event_id)) or {}}
  end
  -- superseded, or not its record's turn: its message has nothing left to do either
  if status == ClaimStatus.superseded or status == ClaimStatus.skip then withdraw(id) end
end
return {ClaimStatus.skip, Reason.none_ready}
