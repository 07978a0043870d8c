-- Pause a connection by hand. req: {conn, info (JSON text)}. Returns 1 if newly paused.
if redis.call('SET', ckey(req.conn, 'pause'), req.info, 'NX') then return 1 end
return 0
