-- fail.lua: processing -> scheduled (retry) | pending (crash, retry now) | failed | dead.
-- KEYS[1] processing  KEYS[2] scheduled  KEYS[3] failed  KEYS[4] dead  KEYS[5] pending
-- KEYS[6] seq  KEYS[7] marker  KEYS[8] stats  KEYS[9] history  KEYS[10] job
-- KEYS[11] attempts  KEYS[12] notify
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] outcome: retry | fail | dead | crash
-- ARGV[4] retry delay ms  ARGV[5] error text  ARGV[6] reason  ARGV[7] failed ttl ms
-- ARGV[8] dead ttl ms  ARGV[9] attempt record JSON  ARGV[10] history size
-- ARGV[11] max deliveries (crash only: the job killed its worker process)
-- KEYS[13] error groups index (zset group id -> last seen ms)  KEYS[14] error group prefix
-- ARGV[12] error group id ('' = none)  ARGV[13] task  ARGV[14] exception type
-- ARGV[15] normalised message  ARGV[16] max groups  ARGV[17] max ids kept per group
-- KEYS[15] run-time ring prefix  ARGV[18] run-time ring size (minutes)  ARGV[19] task
-- ARGV[20] run time ms of this attempt ('': it never ran, e.g. a payload that does not decode)
-- KEYS[16] job log  ARGV[21] captured output: '' none, else '=' and the text to append
--   (the log expires with the job: retain)
-- A job that ends failed or dead joins its error group here, with the failure, so reading
-- groups never scans (join_group in _lib.lua). requeue.lua and purge.lua take a job out.
-- Returns 1 retry scheduled; 2 failed; 3 dead; 4 back to pending; 5 failed and 6 dead when
--   the job has dependents (depend.lua flagged it, perhaps after the worker claimed it): the
--   caller resolves them now; -1 job missing; -2 lease not held. A call re-sent after this
--   lease token already settled the job (its reply was lost) answers as the first did and
--   writes nothing.
local id, job, token = ARGV[1], KEYS[10], ARGV[2]
local held = redis.call('HMGET', job, 'lease', 'settled')
if held[1] ~= token then return resettled(job, held[2], token) end
local now = now_ms()
local outcome, reason = ARGV[3], ARGV[6]
local hist = tonumber(ARGV[10])
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', job, 'lease')
redis.call('HSET', job, 'error', ARGV[5], 'finished_ms', now)
if #ARGV[21] > 1 then redis.call('APPEND', KEYS[16], string.sub(ARGV[21], 2)) end
bump_history(KEYS[9], 'failed', now, hist)
if ARGV[20] ~= '' then
  local runtimes = {}
  count_runtime(runtimes, ARGV[19], tonumber(ARGV[20]) or 0, true)
  add_runtimes(KEYS[15], tonumber(ARGV[18]), now, runtimes)
end
if outcome == 'crash' then
  local lost = redis.call('HINCRBY', job, 'lost', 1)
  if lost >= tonumber(ARGV[11]) then
    outcome = 'dead'
    reason = 'poison: killed its worker process ' .. lost .. ' times (' .. reason .. ')'
  else
    outcome = 'retry'
  end
end
if outcome == 'retry' then
  append_attempt(KEYS[11], ARGV[9], 0)
  redis.call('HINCRBY', job, 'retries', 1)
  redis.call('HINCRBY', KEYS[8], 'retried', 1)
  local delay = tonumber(ARGV[4])
  if delay > 0 then
    redis.call('HSET', job, 'state', 'scheduled', 'settled', '1 ' .. token)
    redis.call('ZADD', KEYS[2], now + delay, id)
    wake_if_first_due(KEYS[2], KEYS[7], now + delay)
    return 1
  end
  redis.call('HSET', job, 'state', 'pending', 'settled', '4 ' .. token)
  push_pending(KEYS[5], KEYS[6], KEYS[7], id, redis.call('HGET', job, 'priority'))
  return 4
end
local ttl, set, code
if outcome == 'dead' then
  ttl, set, code = tonumber(ARGV[8]), KEYS[4], 3
  redis.call('HSET', job, 'state', 'dead', 'reason', reason)
  redis.call('HINCRBY', KEYS[8], 'dead', 1)
else
  ttl, set, code = tonumber(ARGV[7]), KEYS[3], 2
  redis.call('HSET', job, 'state', 'failed', 'reason', reason)
  redis.call('HINCRBY', KEYS[8], 'failed', 1)
end
append_attempt(KEYS[11], ARGV[9], ttl)
if ARGV[12] ~= '' then
  -- Ids older than the longest retention belong to jobs that expired.
  join_group(KEYS[13], KEYS[14], ARGV[12], ARGV[13], ARGV[14], ARGV[15], job, id, now, ARGV[5],
             tonumber(ARGV[16]), tonumber(ARGV[17]), math.max(tonumber(ARGV[7]), tonumber(ARGV[8])))
end
notify_waiters(job, KEYS[12])
-- Read before retain, which deletes the job when its retention is 0.
if redis.call('HEXISTS', job, 'dependents') == 1 then code = code + 3 end
if ttl > 0 then
  redis.call('HSET', job, 'settled', code .. ' ' .. token)
  retain(set, job, id, now, ttl)
else
  retain(set, job, id, now, ttl)
  tombstone(job, code, token)
end
return code
