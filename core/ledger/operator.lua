-- operator: what dead letters and operators' actions share (included by finish, replay,
-- edit, pause and resume).

-- A DEAD delivery is listed in the dead-letter index and in its connection's, mapping's and
-- category's, each by dead_at, so a filtered page is one range read (core/ledger/pages.py),
-- and counted per (connection, category) for the dead_letters alert (core/ledger/alert_store.py).
local function index_dead(id, at)
  local conn, mapping, category = unpack(dmget(id, 'connection',
                                                    'mapping', 'dead_category'))
  redis.call('ZADD', dead_index_key(), at, id)
  redis.call('ZADD', dead_by_connection_key(tostring(conn)), at, id)
  redis.call('ZADD', dead_by_mapping_key(tostring(mapping)), at, id)
  redis.call('ZADD', dead_by_category_key(tostring(category)), at, id)
  redis.call('HINCRBY', dead_counts_key(tostring(conn)), tostring(category), 1)
end

-- Replayed, discarded, edited or erased: out of the indexes, and the alert's group shrinks
-- (never below zero: dead letters from before the counts existed were never counted).
local function unindex_dead(id)
  local conn, mapping, category = unpack(dmget(id, 'connection',
                                                    'mapping', 'dead_category'))
  redis.call('ZREM', dead_index_key(), id)
  redis.call('ZREM', dead_by_connection_key(tostring(conn)), id)
  redis.call('ZREM', dead_by_mapping_key(tostring(mapping)), id)
  redis.call('ZREM', dead_by_category_key(tostring(category)), id)
  local counts = dead_counts_key(tostring(conn))
  if tonumber(redis.call('HGET', counts, tostring(category)) or 0) > 0 then
    redis.call('HINCRBY', counts, tostring(category), -1)
  end
end

-- DEAD -> a fresh run with the current mapping: a new place in its record's queue (rk), a
-- fresh give-up clock; the attempt history is kept. Held if its connection is paused.
local function rerun_dead(id, conn, rk)
  unindex_dead(id)
  ddel(id, 'dead_at', 'dead_category', 'dead_error',
             'dead_record', 'first_attempt_at', 'paused_ms', 'due_at')
  local seq = redis.call('INCR', seq_key())
  -- replayed_at: the backlog_age alert counts a replayed delivery's wait from here
  dset(id, 'attempts', 0, 'seq', seq, 'rk', rk, 'replayed_at', now)
  redis.call('ZADD', rq_key(rk), seq, id)
  if paused(conn) then
    hold(id, conn, State.dead, seq)
  else
    move(id, conn, State.dead, State.pending)
    if head(rk) == id then publish(id) end
  end
end

-- The operator action log (core/ledger/actions.py reads it): `entry` is the action's JSON
-- text; `ids`, when given, the deliveries it applied to (a list).
local function log_action(entry, ids)
  local e = cjson.decode(entry)
  if ids then e.ids = ids; e.count = #ids end
  e.at_ms = now
  redis.call('XADD', action_log_key(), 'MAXLEN', '~', 100000, '*', 'entry', cjson.encode(e))
end
