-- advertise.lua: a worker says which tasks it runs for one of its queues (no job changes).
-- KEYS[1] the queue's tasks hash: worker id -> '<valid until ms> <task>,<task>,...'
-- ARGV[1] worker id  ARGV[2] ms the entry stays valid without another call (0: withdraw it)
-- ARGV[3] the worker's task names, comma-separated
-- Returns 1.
-- The hash expires when no worker of the queue renews it. The entry of a worker that stopped
-- without withdrawing it (SIGKILL) is out of date after its ttl; the heartbeats of the other
-- workers drop it when they forget that worker, and unknown.lua when it reads the entries.
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], (now_ms() + ttl) .. ' ' .. ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
