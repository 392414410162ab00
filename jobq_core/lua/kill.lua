-- kill.lua: scheduled -> dead for a job waiting out a retry backoff (an operator gives up on it).
-- KEYS[1] scheduled  KEYS[2] dead  KEYS[3] stats  KEYS[4] job  KEYS[5] notify
-- ARGV[1] job id  ARGV[2] dead ttl ms  ARGV[3] reason
-- Returns 1; -1 job missing; -5 job is in another state, or scheduled but not a retry (delayed
--   or waiting on dependencies); it is not changed
local job = KEYS[4]
local state = redis.call('HGET', job, 'state')
if not state then return -1 end
local retries = tonumber(redis.call('HGET', job, 'retries') or '0') or 0
if state ~= 'scheduled' or retries < 1 or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return -5
end
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
redis.call('HSET', job, 'state', 'dead', 'reason', ARGV[3], 'finished_ms', now)
redis.call('HINCRBY', KEYS[3], 'dead', 1)
notify_waiters(job, KEYS[5])
retain(KEYS[2], job, ARGV[1], now, tonumber(ARGV[2]))
return 1
