-- resolve.lua: deferred -> pending (every parent ended) | dead ("dependency failed") | still
-- deferred, given how some of the job's parents ended.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] seq  KEYS[4] marker  KEYS[5] dead  KEYS[6] stats
-- KEYS[7] history  KEYS[8] job  KEYS[9] notify
-- ARGV[1] job id  ARGV[2] dead ttl ms  ARGV[3] history size
-- ARGV[4] ms until the dependencies are checked again if still deferred (0: leave as is)
-- ARGV[5..] pairs: parent ref ('queue/id'), how it ended: completed | failed | dead | cancelled
--   | missing
-- Returns 'pending' | 'dead' | 'waiting' | 'gone' (not deferred: released, cancelled, purged).
-- Each parent counts once (its 'dep:<ref>' field is deleted), so repeating a call is harmless.
-- A parent that did not complete sends the job to dead unless it has allow_failure.
local id, job = ARGV[1], KEYS[8]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score or tonumber(score) < DEFERRED_MS then return 'gone' end
if redis.pcall('HGET', job, 'state') ~= 'scheduled' then return 'gone' end
local now = now_ms()
local allow = redis.call('HGET', job, 'allow_failure') == '1'
local failed = nil
for i = 5, #ARGV, 2 do
  local parent, ended = ARGV[i], ARGV[i + 1]
  if redis.call('HDEL', job, 'dep:' .. parent) == 1 then
    redis.call('HINCRBY', job, 'deps_left', -1)
    if ended ~= 'completed' and not allow and not failed then
      failed = 'dependency failed: job ' .. parent .. ' ended ' .. ended
    end
  end
end
if failed then
  redis.call('ZREM', KEYS[1], id)
  redis.call('HSET', job, 'state', 'dead', 'reason', failed, 'finished_ms', now)
  redis.call('HINCRBY', KEYS[6], 'dead', 1)
  bump_history(KEYS[7], 'failed', now, tonumber(ARGV[3]))
  notify_waiters(job, KEYS[9])
  retain(KEYS[5], job, id, now, tonumber(ARGV[2]))
  return 'dead'
end
if tonumber(redis.call('HGET', job, 'deps_left') or '0') <= 0 then
  redis.call('ZREM', KEYS[1], id)
  local ttl_ms = tonumber(redis.call('HGET', job, 'ttl_ms') or '0')
  if ttl_ms > 0 then redis.call('HSET', job, 'expires_ms', now + ttl_ms) end
  redis.call('HSET', job, 'state', 'pending', 'released_ms', now)
  push_pending(KEYS[2], KEYS[3], KEYS[4], id, redis.call('HGET', job, 'priority'))
  return 'pending'
end
local delay = tonumber(ARGV[4])
if delay > 0 then redis.call('ZADD', KEYS[1], 'XX', DEFERRED_MS + now + delay, id) end
return 'waiting'
