-- Resume a connection: lift the pause, then move up to req.limit HELD deliveries (in arrival
-- order) back to PENDING, publishing each that is its record's next write. The caller repeats
-- until nothing is held; the rate limiter paces the drain at claim time.
-- req: {conn, limit, lift}. Returns the number still held.
if req.lift then redis.call('DEL', ckey(req.conn, 'pause')) end
if paused(req.conn) then return -1 end      -- paused again meanwhile: leave the rest held
local held = ckey(req.conn, 'held')
for _, id in ipairs(redis.call('ZRANGE', held, 0, req.limit - 1)) do
  redis.call('ZREM', held, id)
  local state, rk, held_at = unpack(redis.call('HMGET', dkey(id), 'state', 'rk', 'held_at'))
  if state == 'held' then
    -- time spent paused does not count toward the retry give-up
    redis.call('HINCRBY', dkey(id), 'paused_ms', now - (tonumber(held_at) or now))
    redis.call('HDEL', dkey(id), 'held_at')
    move(id, req.conn, 'held', 'pending')
    if head(rk) == id then publish(id) end
  end
end
return redis.call('ZCARD', held)
