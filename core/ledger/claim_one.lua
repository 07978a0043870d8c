-- Claim one delivery for an attempt: PENDING -> IN_FLIGHT with a lease owned by `token`.
-- Included by claim.lua and claim_batch.lua (after common.lua).
-- `rate` is nil when the caller already holds the connection's rate token; else either
-- {window_ms, requests} (a rolling window) or {interval_ms, burst_ms} (GCRA, with a burst).
-- Returns one of (decoded by core/ledger/replies.py, claim):
--   {ClaimStatus.skip, state or Reason}  stale or duplicate message: not pending (its state,
--                                        or Reason.missing), or not its turn (Reason.waiting)
--   {ClaimStatus.held}                   the connection is paused: now HELD
--   {ClaimStatus.superseded}             older than what was already applied to the record
--   {ClaimStatus.deferred, due_ms, Reason} cooldown / circuit open or probing / long rate
--                                        wait: now SCHEDULED until due_ms
--   {ClaimStatus.wait, ms}               rate limit: try again after ms (state unchanged)
--   {ClaimStatus.claimed, attempts}      now IN_FLIGHT, owned by token
local function claim_one(id, token, lease_ms, rate, max_wait_ms)
  local state, conn, rk, seq, occurred = unpack(dmget(id, 'state',
                                                           'connection', 'rk', 'seq',
                                                           'occurred_ms'))
  if state ~= State.pending then return {ClaimStatus.skip, state or Reason.missing} end
  if head(rk) ~= id then
    -- Not this record's turn: it is published again when the writes before it finish.
    unpublish(id)
    return {ClaimStatus.skip, Reason.waiting}
  end
  -- newest_wins: an event older (by the source's timestamp) than the last one applied to this
  -- record must not overwrite it
  occurred = tonumber(occurred)
  if occurred then
    local applied = tonumber(redis.call('HGET', record_applied_key(rk), 'applied_ms'))
    if applied and occurred < applied then
      unpublish(id)
      move(id, conn, State.pending, State.superseded)
      dset(id, 'superseded_by_ms', applied)
      rq_remove(rk, id)
      advance(rk)
      settle(dget(id, 'event_id'))
      return {ClaimStatus.superseded}
    end
  end
  if paused(conn) then
    unpublish(id)
    hold(id, conn, State.pending, seq)
    return {ClaimStatus.held}
  end

  local cooldown = tonumber(redis.call('GET', cooldown_key(conn)))
  if cooldown and cooldown > now then
    schedule(id, conn, State.pending, cooldown)
    return {ClaimStatus.deferred, cooldown, Reason.cooldown}
  end

  -- Circuit breaker: while open, deliveries wait; once due, exactly one probe goes through
  -- (a delivery waiting for another's probe looks again within a second).
  local until_ms, why = circuit_gate(conn, id, lease_ms)
  if why then
    local due = why == Reason.circuit_probe and math.min(until_ms, now + 1000) or until_ms
    schedule(id, conn, State.pending, due)
    return {ClaimStatus.deferred, due, why}
  end

  -- Rate limit shared by every worker and host (take_rate, common.lua).
  if rate then
    local wait = take_rate(conn, rate, id .. '|' .. token, now + lease_ms)
    if wait then
      if wait > max_wait_ms then
        schedule(id, conn, State.pending, now + wait)
        return {ClaimStatus.deferred, now + wait, Reason.rate_limit}
      end
      return {ClaimStatus.wait, wait}
    end
  end

  local lease_until = now + lease_ms
  move(id, conn, State.pending, State.in_flight)
  unpublish(id)
  redis.call('ZADD', inflight_index_key(), lease_until, id)
  local attempts = dincr(id, 'attempts', 1)
  dset(id, 'token', token, 'lease_until', lease_until)
  dsetnx(id, 'first_attempt_at', now)
  return {ClaimStatus.claimed, attempts}
end
