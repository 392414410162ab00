-- unknown.lua: processing -> scheduled (handed back) | dead, for a job whose task the calling
-- worker does not know. During a rolling deploy old and new workers share a queue: the job
-- is handed back, a little later, while a live worker serving the queue advertises the task
-- (advertise.lua), and also while none does, for a grace period counted from the first time
-- no worker knew it (field unknown_since_ms); after that it goes to dead. A hand-back is not
-- an attempt: retries, the lost counter and the attempt log are left alone, and the claim's
-- delivery is taken back (deliveries counts the times the job was given to a worker that
-- could run it). As deliveries no longer tells this worker's claims apart, the field
-- 'handbacks' counts hand-backs and claim.lua puts it in the next lease token: a late
-- renewal or settlement of the claim handed back must not pass for a new claim of the job.
--
-- While a live worker knows the task, the job goes back to pending at once (at the head of
-- its band, marker set), so an idle worker that knows it is woken and takes it: workers
-- blocked on the marker are served longest-waiting first, and the worker handing back has
-- just claimed. A job scheduled instead would be due for every worker at the same instant,
-- and on such ties Redis serves the older connection first, which in a rolling deploy is the
-- old worker: it could win the job again and again for as long as the deploy lasted. Only
-- a job this worker handed back less than ARGV[7] ms ago (the old worker claimed it again,
-- the worker that knows it being busy) is scheduled ARGV[7] ms later, so it never bounces
-- faster than that.
-- KEYS[1] processing  KEYS[2] scheduled  KEYS[3] dead  KEYS[4] stats  KEYS[5] history
-- KEYS[6] job  KEYS[7] notify  KEYS[8] the queue's tasks hash (advertise.lua)
-- KEYS[9] pending  KEYS[10] marker
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] worker id  ARGV[4] task name  ARGV[5] queue
-- ARGV[6] grace ms  ARGV[7] hand-back delay ms while a live worker knows the task
-- ARGV[8] hand-back delay ms while none does (at most what is left of the grace)
-- ARGV[9] dead ttl ms  ARGV[10] history size
-- Returns {1, id of a live worker that knows the task, 'pending' | 'scheduled'} handed back;
--   {2, ms of grace left}
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
  redis.call('HINCRBY', job, 'handbacks', 1)
  if delay then
    redis.call('HSET', job, 'state', 'scheduled')
    redis.call('ZADD', KEYS[2], now + delay, id)
    wake_if_first_due(KEYS[2], KEYS[10], now + delay)
  else
    redis.call('HSET', job, 'state', 'pending')
    push_front(KEYS[9], KEYS[10], id, redis.call('HGET', job, 'priority'))
  end
end
if knower then
  redis.call('HDEL', job, 'unknown_since_ms')
  local known_delay = tonumber(ARGV[7])
  local last = tonumber(redis.call('HGET', job, 'handed_back_ms') or '')
  redis.call('HSET', job, 'handed_back_ms', now)
  if last and now - last < known_delay then
    hand_back(known_delay)
    return {1, knower, 'scheduled'}
  end
  hand_back(nil)
  return {1, knower, 'pending'}
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
