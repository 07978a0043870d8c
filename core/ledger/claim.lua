-- Claim a delivery for one attempt (see claim_one in common.lua).
-- req: {id, lease_ms, token, max_wait_ms,
--       rates: {connection: {interval_ms, burst_ms}} (the connections that have a rate limit;
--              the delivery's own connection picks its entry) or absent,
--       with_record: true to also return the delivery and its event as they now are}
-- Returns claim_one's answer, or with with_record {answer, delivery fields, event fields}
-- (flat HGETALL arrays; empty when missing; the event only when claimed), so a worker needs
-- no reads before or after.
local rate = nil
if req.rates then
  local conn = redis.call('HGET', dkey(req.id), 'connection')
  if conn then rate = req.rates[conn] end
end
local answer = claim_one(req.id, req.token, req.lease_ms, rate, req.max_wait_ms)
if not req.with_record then return answer end
local delivery = redis.call('HGETALL', dkey(req.id))
local event = {}
if answer[1] == 'claimed' then    -- only an attempt needs the event (and its body)
  local event_id = redis.call('HGET', dkey(req.id), 'event_id')
  if event_id then event = redis.call('HGETALL', p .. ':evt:' .. event_id) end
end
return {answer, delivery, event}
