-- complete.lua: processing -> completed for a batch of jobs, each only if the caller still
-- holds its lease. Batched so a busy worker settles many jobs in one round trip; the zset
-- updates, counters and history are written once per batch.
-- KEYS[1] processing  KEYS[2] completed  KEYS[3] stats  KEYS[4] history  KEYS[5] job prefix
-- KEYS[6] run-time ring prefix
-- ARGV[1] history size  ARGV[2] run-time ring size (minutes), then per job: id, lease token,
-- result JSON, result ttl ms, runtime ms (counted into the task's run-time histogram),
--   captured output: '' none (no log to touch), else '=' and the text to append to
--   job .. ':logs' (Keyspace.logs), which then expires with the job
-- A numeric progress becomes 1.0.
-- Returns one code per job: 1 completed; 2 completed, and it has dependents (depend.lua
-- flagged it, perhaps after the worker claimed it): the caller resolves them now;
-- -1 job missing; -2 lease not held (the codes of scripts.Code; scripts.raise_for maps
-- them to errors). A job this call's lease token already completed (a re-sent call: its
-- reply was lost) answers 1 or 2 again, as the first send did, and nothing is written twice.
local now = now_ms()
local out, done, kept, runtimes = {}, {}, {}, {}
local ndone, nkept = 0, 0
for i = 3, #ARGV, 6 do
  local id = ARGV[i]
  local job = KEYS[5] .. id
  local code = 1
  local f = redis.pcall('HMGET', job, 'lease', 'waiters', 'retries', 'lost', 'progress',
                        'dependents', 'task', 'settled')
  if f.err then
    code = -1  -- not a hash: nothing of ours to complete
  elseif f[1] ~= ARGV[i + 1] then
    code = resettled(job, f[8], ARGV[i + 1])
  else
    if f[6] then code = 2 end
    local waiters = tonumber(f[2] or '0') or 0
    if waiters > 0 then
      local notify = job .. ':notify'
      for _ = 1, waiters do redis.call('RPUSH', notify, '1') end
      redis.call('EXPIRE', notify, 300)
      redis.call('HDEL', job, 'lease', 'waiters')
    else
      redis.call('HDEL', job, 'lease')
    end
    redis.call('HSET', job, 'state', 'completed', 'result', ARGV[i + 2], 'finished_ms', now,
               'runtime_ms', ARGV[i + 4], 'settled', code .. ' ' .. ARGV[i + 1])
    -- A completed job is done: a progress the task reported as a number reads 1.0, not
    -- the last step it reported. A JSON object is the task's own shape and is kept.
    if f[5] and tonumber(f[5]) then redis.call('HSET', job, 'progress', '1.0') end
    local ttl_ms = tonumber(ARGV[i + 3])
    -- Only a job that failed an attempt or lost a lease before has an attempt log.
    local attempts = (f[3] or f[4]) and job .. ':attempts'
    -- And a log of captured output if this attempt or an earlier one printed anything.
    local logs = (ARGV[i + 5] ~= '' or attempts) and job .. ':logs'
    if #ARGV[i + 5] > 1 then redis.call('APPEND', logs, string.sub(ARGV[i + 5], 2)) end
    if ttl_ms > 0 then
      redis.call('PEXPIRE', job, ttl_ms)
      if attempts then redis.call('PEXPIRE', attempts, ttl_ms) end
      if logs then redis.call('PEXPIRE', logs, ttl_ms) end
      nkept = nkept + 2
      kept[nkept - 1] = now + ttl_ms; kept[nkept] = id
    else
      redis.call('DEL', job)
      if attempts then redis.call('DEL', attempts) end
      if logs then redis.call('DEL', logs) end
      tombstone(job, code, ARGV[i + 1])
    end
    count_runtime(runtimes, f[7] or '', tonumber(ARGV[i + 4]) or 0, false)
    ndone = ndone + 1
    done[ndone] = id
  end
  out[(i + 3) / 6] = code
end
if ndone > 0 then
  chunked('ZREM', KEYS[1], done)
  if nkept > 0 then chunked('ZADD', KEYS[2], kept) end
  trim_expired(KEYS[2], now)
  redis.call('HINCRBY', KEYS[3], 'completed', ndone)
  bump_history(KEYS[4], 'completed', now, tonumber(ARGV[1]), ndone)
  add_runtimes(KEYS[6], tonumber(ARGV[2]), now, runtimes)
end
return out
