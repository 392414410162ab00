-- complete.lua: processing -> completed, only if the caller still holds the lease.
-- KEYS[1] processing  KEYS[2] completed  KEYS[3] stats  KEYS[4] history  KEYS[5] job
-- KEYS[6] notify
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] result JSON  ARGV[4] result ttl ms
-- ARGV[5] history size  ARGV[6] runtime ms
-- Returns 1; -1 job missing; -2 lease not held (scripts.CODES maps these to errors)
local job = KEYS[5]
local held = redis.call('HGET', job, 'lease')
if not held then
  if redis.call('EXISTS', job) == 0 then return -1 end
  return -2
end
if held ~= ARGV[2] then return -2 end
local now = now_ms()
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', job, 'lease')
redis.call('HSET', job, 'state', 'completed', 'result', ARGV[3], 'finished_ms', now,
           'runtime_ms', ARGV[6])
redis.call('HINCRBY', KEYS[3], 'completed', 1)
bump_history(KEYS[4], 'completed', now, tonumber(ARGV[5]))
notify_waiters(job, KEYS[6])
retain(KEYS[2], job, ARGV[1], now, tonumber(ARGV[4]))
return 1
