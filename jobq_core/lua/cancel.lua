-- cancel.lua: pending | scheduled -> cancelled.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] cancelled  KEYS[4] stats  KEYS[5] job
-- KEYS[6] notify
-- ARGV[1] job id  ARGV[2] cancelled ttl ms
-- Returns 1; -1 job missing; -5 job is in another state (it is not changed)
local job = KEYS[5]
local state = redis.call('HGET', job, 'state')
if not state then return -1 end
if state == 'pending' then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif state == 'scheduled' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  return -5
end
local now = now_ms()
redis.call('HSET', job, 'state', 'cancelled', 'finished_ms', now)
redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
notify_waiters(job, KEYS[6])
retain(KEYS[3], job, ARGV[1], now, tonumber(ARGV[2]))
return 1
