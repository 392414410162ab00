-- unknown.lua: processing -> scheduled (handed back) | dead, for a job whose task the calling
-- worker does not know. During a rolling deploy old and new workers share a queue: the job
-- is handed back, a little later, while a live worker serving the queue advertises the task
-- (advertise.lua), and also while none does, for a grace period counted from the first time
-- no worker knew it (field unknown_since_ms); after that it goes to dead. A hand-back is not
-- an attempt: retries, the lost counter and the attempt log are left alone, and the claim's
-- delivery is taken back (deliveries counts the times the job was given to a worker that
-- could run it).
-- KEYS[1] processing  KEYS[2] scheduled  KEYS[3] dead  KEYS[4] stats  KEYS[5] history
-- KEYS[6] job  KEYS[7] notify  KEYS[8] the queue's tasks hash (advertise.lua)
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] worker id  ARGV[4] task name  ARGV[5] queue
-- ARGV[6] grace ms  ARGV[7] hand-back delay ms while a live worker knows the task
-- ARGV[8] hand-back delay ms while none does (at most what is left of the grace)
-- ARGV[9] dead ttl ms  ARGV[10] history size
-- Returns {1, id of a live worker that knows the task} handed back; {2, ms of grace left}
--   handed back, no live worker knows it yet; {3, reason, 1 if the job has dependents else 0}
--   dead; -1 job missing; -2 lease not held
local id, job, task = ARGV[1], KEYS[6], ARGV[4]
local refused = lease_check(job, ARGV[2])
if refused ~= 0 then return refused end
local now = now_ms()
-- One entry per worker serving the queue; out-of-date ones (their worker stopped beating)
-- are dropped on the way.
local knower = nil
local entries = redis.call('HGETALL', KEYS[8])
for i = 1, #entries, 2 do
  local valid, names = string.match(entries[i + 1], '^(%d+) (.*)$')
  if not valid or tonumber(valid) < now then
    redis.call('HDEL', KEYS[8], entries[i])
  elseif not knower and entries[i] ~= ARGV[3]
      and string.find(',' .. names .. ',', ',' .. task .. ',', 1, true) then
    knower = entries[i]
  end
end
local function hand_back(delay)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', job, 'lease')
  redis.call('HINCRBY', job, 'deliveries', -1)
  redis.call('HSET', job, 'state', 'scheduled')
  redis.call('ZADD', KEYS[2], now + delay, id)
end
if knower then
  redis.call('HDEL', job, 'unknown_since_ms')
  hand_back(tonumber(ARGV[7]))
  return {1, knower}
end
local since = tonumber(redis.call('HGET', job, 'unknown_since_ms') or '')
if not since then
  since = now
  redis.call('HSET', job, 'unknown_since_ms', now)
end
local left = since + tonumber(ARGV[6]) - now
if left > 0 then
  hand_back(math.max(1, math.min(left, tonumber(ARGV[8]))))
  return {2, left}
end
local reason = "unknown task '" .. task .. "': no live worker serving queue '" .. ARGV[5]
  .. "' knows it after " .. math.floor((now - since) / 1000) .. ' s'
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', job, 'lease')
redis.call('HSET', job, 'state', 'dead', 'reason', reason, 'finished_ms', now)
redis.call('HINCRBY', KEYS[4], 'dead', 1)
bump_history(KEYS[5], 'failed', now, tonumber(ARGV[10]))
notify_waiters(job, KEYS[7])
retain(KEYS[3], job, id, now, tonumber(ARGV[9]))
return {3, reason, redis.call('HEXISTS', job, 'dependents')}
