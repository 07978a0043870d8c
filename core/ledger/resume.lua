-- resume: lift the pause, then move up to req.limit HELD deliveries (in arrival order) back to
-- PENDING, publishing each that is its record's next write. The caller repeats until nothing
-- is held; the rate limiter paces the drain at claim time.
-- ARGV[1]: {conn, limit, lift (true on the first call: lift the pause), note (JSON text for
--           the action log, with lift, when an operator resumed it)}
-- Reply: the number still held, or -1 if the connection was paused again meanwhile (the rest
-- stay held).
if req.lift then
  if redis.call('DEL', pause_key(req.conn)) == 1 and req.note then log_action(req.note) end
end
if paused(req.conn) then return -1 end
local held = held_key(req.conn)
for _, id in ipairs(redis.call('ZRANGE', held, 0, req.limit - 1)) do
  redis.call('ZREM', held, id)
  local state, rk, held_at = unpack(dmget(id, 'state', 'rk',
                                               'held_at'))
  if state == State.held then
    -- time spent paused does not count toward the retry give-up
    dincr(id, 'paused_ms', now - (tonumber(held_at) or now))
    ddel(id, 'held_at')
    move(id, req.conn, State.held, State.pending)
    if head(rk) == id then publish(id) end
  end
end
return redis.call('ZCARD', held)
