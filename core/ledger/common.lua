-- Shared by every ledger script (prepended at load time). Each script receives
-- ARGV[1] = JSON request with at least: prefix (p), now (ms), queue (the Celery list key),
-- template (a Celery message with @DLV@ / @TAG@ placeholders).
local req = cjson.decode(ARGV[1])
local p = req.prefix
local now = tonumber(req.now)

local function dkey(id) return p .. ':dlv:' .. id end
local function ckey(conn, what) return p .. ':conn:' .. conn .. ':' .. what end

-- Change a delivery's state, keeping the per-connection counts in step.
local function move(id, conn, from, to)
  redis.call('HSET', dkey(id), 'state', to, 'updated_at', now)
  if from then redis.call('HINCRBY', ckey(conn, 'counts'), from, -1) end
  redis.call('HINCRBY', ckey(conn, 'counts'), to, 1)
end

-- Publish the Celery message for a PENDING delivery (in the same atomic step).
local function publish(id)
  local n = redis.call('INCR', p .. ':msgseq')
  local msg = (string.gsub(req.template, '@DLV@', id))
  msg = (string.gsub(msg, '@TAG@', tostring(n)))
  redis.call('LPUSH', req.queue, msg)
  redis.call('ZADD', p .. ':idx:pending', now, id)
  redis.call('HSET', dkey(id), 'published_at', now)
end

-- Writes to one record run one at a time, in arrival order: the record key's queue.
local function rkey(rk) return p .. ':rk:' .. rk end
local function head(rk)
  local h = redis.call('ZRANGE', rkey(rk), 0, 0)
  return h[1]
end

local function paused(conn) return redis.call('EXISTS', ckey(conn, 'pause')) == 1 end

local function hold(id, conn, from, seq)
  move(id, conn, from, 'held')
  redis.call('ZADD', ckey(conn, 'held'), seq, id)
  redis.call('HSET', dkey(id), 'held_at', now)
end

-- After a delivery leaves its record's queue, start the next write for that record.
local function advance(rk)
  local nxt = head(rk)
  if nxt and redis.call('HGET', dkey(nxt), 'state') == 'pending'
      and not redis.call('ZSCORE', p .. ':idx:pending', nxt) then
    publish(nxt)
  end
end

-- The newest source timestamp applied to a record (conflict rule newest_wins).
local function rkmeta(rk) return p .. ':rkmeta:' .. rk end

-- PENDING (or IN_FLIGHT) -> SCHEDULED until `due` (ms).
local function schedule(id, conn, from, due)
  move(id, conn, from, 'scheduled')
  redis.call('ZREM', p .. ':idx:pending', id)
  redis.call('ZADD', p .. ':idx:scheduled', due, id)
  redis.call('HSET', dkey(id), 'due_at', due)
end
