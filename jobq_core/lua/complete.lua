-- complete.lua: processing -> completed for a batch of jobs, each only if the caller still
-- holds its lease. Batched so a busy worker settles many jobs in one round trip; the zset
-- updates, counters and history are written once per batch.
-- KEYS[1] processing  KEYS[2] completed  KEYS[3] stats  KEYS[4] history  KEYS[5] job prefix
-- ARGV[1] history size, then per job: id, lease token, result JSON, result ttl ms, runtime ms
-- Returns one code per job: 1 completed; -1 job missing; -2 lease not held
-- (scripts.CODES maps these to errors)
local now = now_ms()
local out, done, kept = {}, {}, {}
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  local job = KEYS[5] .. id
  local f = redis.pcall('HMGET', job, 'lease', 'waiters', 'retries', 'lost')
  if f.err then
    out[#out + 1] = -1  -- not a hash: nothing of ours to complete
  elseif not f[1] then
    if redis.call('EXISTS', job) == 0 then out[#out + 1] = -1 else out[#out + 1] = -2 end
  elseif f[1] ~= ARGV[i + 1] then
    out[#out + 1] = -2
  else
    local waiters = tonumber(f[2] or '0') or 0
    if waiters > 0 then
      local notify = job .. ':notify'
      for _ = 1, waiters do redis.call('RPUSH', notify, '1') end
      redis.call('EXPIRE', notify, 300)
    end
    redis.call('HDEL', job, 'lease', 'waiters')
    redis.call('HSET', job, 'state', 'completed', 'result', ARGV[i + 2], 'finished_ms', now,
               'runtime_ms', ARGV[i + 4])
    local ttl_ms = tonumber(ARGV[i + 3])
    -- Only a job that failed an attempt or lost a lease before has an attempt log.
    local attempts = (f[3] or f[4]) and job .. ':attempts'
    if ttl_ms > 0 then
      redis.call('PEXPIRE', job, ttl_ms)
      if attempts then redis.call('PEXPIRE', attempts, ttl_ms) end
      kept[#kept + 1] = now + ttl_ms; kept[#kept + 1] = id
    else
      redis.call('DEL', job)
      if attempts then redis.call('DEL', attempts) end
    end
    done[#done + 1] = id
    out[#out + 1] = 1
  end
end
if #done > 0 then
  chunked('ZREM', KEYS[1], done)
  if #kept > 0 then chunked('ZADD', KEYS[2], kept) end
  trim_expired(KEYS[2], now)
  redis.call('HINCRBY', KEYS[3], 'completed', #done)
  bump_history(KEYS[4], 'completed', now, tonumber(ARGV[1]), #done)
end
return out
