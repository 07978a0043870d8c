-- read_outcome: what a read a permit let through (permit.lua) tells of its connection, as
-- finish.lua records a write's: a success closes the circuit and is the connection's last
-- success; a failure of the target (timeout, 5xx) counts toward the circuit; a 429 cools the
-- whole connection down; a refused credential pauses it (reason auth), as a write's would,
-- and the connection_paused alert follows.
-- ARGV[1]: {conn, ok (true: success), transient (counts toward the breaker), error,
--           cooldown_until (ms, 0: none), pause (JSON text, or ''), breaker: {threshold,
--           open_ms, max_open_ms}}
-- Reply: {newly_paused (0|1)}. Decoded by core/ledger/replies.py (read_outcome).
local conn = req.conn
local last = last_key(conn)
local bkey = breaker_key(conn)
if req.ok then
  redis.call('DEL', bkey)
  redis.call('HSET', last, 'success_at', now)
  return {0}
end
redis.call('HSET', last, 'failure_at', now, 'failure', req.error or '')
if req.transient then
  local b = req.breaker
  local bstate, open_ms = unpack(redis.call('HMGET', bkey, 'state', 'open_ms'))
  local failures = redis.call('HINCRBY', bkey, 'failures', 1)
  if bstate == CircuitState.half_open or failures >= b.threshold then
    local next_ms = b.open_ms
    if bstate == CircuitState.half_open and open_ms then
      next_ms = math.min(b.max_open_ms, tonumber(open_ms) * 2)
    end
    redis.call('HSET', bkey, 'state', CircuitState.open, 'open_until', now + next_ms,
               'open_ms', next_ms)
    redis.call('HDEL', bkey, 'probe', 'probe_until')
  end
end
if req.cooldown_until > 0 then
  local cd = tonumber(redis.call('GET', cooldown_key(conn))) or 0
  if req.cooldown_until > cd then
    redis.call('SET', cooldown_key(conn), req.cooldown_until,
               'PX', math.max(1, req.cooldown_until - now))
  end
end
if req.pause ~= '' and redis.call('SET', pause_key(conn), req.pause, 'NX') then
  redis.call('HSET', last, 'paused_at', now, 'paused_by', tostring(cjson.decode(req.pause).by))
  return {1}
end
return {0}
