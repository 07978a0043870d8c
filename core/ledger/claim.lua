-- Claim a delivery for one attempt (see claim_one in common.lua).
-- req: {id, lease_ms, token, max_wait_ms, rate: {interval_ms, burst_ms} or absent}
return claim_one(req.id, req.token, req.lease_ms, req.rate, req.max_wait_ms)
