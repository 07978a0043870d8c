-- permit: may a read of a connection go out now (a polling source's listing, a backfill's
-- page)? It obeys the switches a delivery's claim obeys (claim_one.lua): the pause, the 429
-- cooldown, the circuit (while open nothing goes; once due, this read is its one probe) and
-- the rate limit, whose theoretical arrival time it shares with the deliveries, so reads and
-- writes together stay within the connection's limit.
-- With rate_only, only the rate limit: a read a delivery makes besides its write (a two-way
-- pair's read of the target, a `fetch:`), whose claim obeyed the switches already.
-- ARGV[1]: {conn, probe (who asks: the breaker's probe while half open), probe_ms (how long
--           the probe may take), read (this listing's own id, its place in the rate
--           window), rate: the deliveries' rate parameters (core/ledger/rates.py) or absent,
--           rate_only: true to skip the switches}
-- Reply: {ClaimStatus.claimed} go (a rate token taken); {ClaimStatus.held} the connection is
-- paused; {ClaimStatus.deferred, until_ms, Reason} cooldown, circuit open or another probe
-- under way; {ClaimStatus.wait, ms} the rate limit: ask again after ms. Decoded by
-- core/ledger/replies.py (permit) into a Permit.
local conn = req.conn

-- the switches a claim obeys: nil when the read may go, else the reply
local function switched()
  if paused(conn) then return {ClaimStatus.held} end
  local cooldown = tonumber(redis.call('GET', cooldown_key(conn)))
  if cooldown and cooldown > now then return {ClaimStatus.deferred, cooldown, Reason.cooldown} end
  local until_ms, why = circuit_gate(conn, req.probe, req.probe_ms)
  if why then return {ClaimStatus.deferred, until_ms, why} end
  return nil
end

if not req.rate_only then
  local answer = switched()
  if answer then return answer end
end

if req.rate then
  -- the same limiter as the deliveries' (take_rate, common.lua): a listing's place counts
  -- from now
  local wait = take_rate(conn, req.rate, 'read|' .. req.read, now)
  if wait then return {ClaimStatus.wait, wait} end
end
return {ClaimStatus.claimed}
