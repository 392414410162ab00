-- complete.lua: processing -> completed for a batch of jobs, each only if the caller still
-- holds its lease. Batched so a busy worker settles many jobs in one round trip.
-- KEYS[1] processing  KEYS[2] completed  KEYS[3] stats  KEYS[4] history  KEYS[5] job prefix
-- ARGV[1] history size, then per job: id, lease token, result JSON, result ttl ms, runtime ms
-- Returns one code per job: 1 completed; -1 job missing; -2 lease not held
-- (scripts.CODES maps these to errors)
local now = now_ms()
local out, done = {}, 0
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  local job = KEYS[5] .. id
  local held = redis.call('HGET', job, 'lease')
  if not held then
    if redis.call('EXISTS', job) == 0 then out[#out + 1] = -1 else out[#out + 1] = -2 end
  elseif held ~= ARGV[i + 1] then
    out[#out + 1] = -2
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', job, 'lease')
    redis.call('HSET', job, 'state', 'completed', 'result', ARGV[i + 2], 'finished_ms', now,
               'runtime_ms', ARGV[i + 4])
    notify_waiters(job, job .. ':notify')
    retain(KEYS[2], job, id, now, tonumber(ARGV[i + 3]))
    done = done + 1
    out[#out + 1] = 1
  end
end
if done > 0 then
  redis.call('HINCRBY', KEYS[3], 'completed', done)
  bump_history(KEYS[4], 'completed', now, tonumber(ARGV[1]), done)
end
return out
