-- pause: pause a connection by hand (its deliveries are held as they come up).
-- ARGV[1]: {conn, info (JSON text: reason, since, by, detail), note (JSON text for the
--           action log, when an operator paused it)}
-- Reply: 1 if newly paused, 0 if it already was.
if redis.call('SET', pause_key(req.conn), req.info, 'NX') then
  if req.note then log_action(req.note) end
  -- kept after a resume: a pause shorter than the alert check's interval still alerts
  redis.call('HSET', last_key(req.conn), 'paused_at', now,
             'paused_by', tostring(cjson.decode(req.info).by))
  return 1
end
return 0
