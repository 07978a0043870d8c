-- claim: take a delivery for one attempt (claim_one.lua decides).
-- ARGV[1]: {id, token, lease_ms, max_wait_ms,
--           rates: {connection: {window_ms, requests} | {interval_ms, burst_ms}} (the
--                  connections that have a rate limit; the delivery's own connection
--                  picks its entry) or absent,
--           with_data: true to also return the delivery and its event as they now are}
-- Reply: claim_one's answer; with with_data {answer, delivery, event}, the last two flat
-- HGETALL arrays (empty when missing; the event only when claimed), so a worker needs no
-- reads before or after. Decoded by core/ledger/replies.py (claim) into a Claim.
local rate = nil
if req.rates then
  local conn = dget(req.id, 'connection')
  if conn then rate = req.rates[conn] end
end
local answer = claim_one(req.id, req.token, req.lease_ms, rate, req.max_wait_ms)
if not req.with_data then return answer end
local delivery = dgetall(req.id)
local event = {}
if answer[1] == ClaimStatus.claimed then    -- only an attempt needs the event (and its body)
  local event_id = dget(req.id, 'event_id')
  if event_id then event = redis.call('HGETALL', event_key(event_id)) end
end
return {answer, delivery, event}
