-- fire.lua: one tick of a periodic schedule -> a new pending job, at most once per tick.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] stats  KEYS[5] meta  KEYS[6] marker
-- KEYS[7] job prefix  KEYS[8] ticks
-- ARGV[1] schedule name  ARGV[2] tick ms  ARGV[3] leader epoch  ARGV[4] job id
-- ARGV[5] priority  ARGV[6] ttl ms  ARGV[7..] field, value, ... (task, args, kwargs, options)
-- Returns 1 created; 0 this tick or a later one was already fired, or the job id exists;
--   -3 the queue is at its max_length (nothing written); -4 refused: a leader with a newer
--   epoch has fired this schedule, so the caller lost the lease and must stop firing.
-- The ticks hash keeps per schedule '<last tick fired> <epoch that fired it>': ticks only go
-- forward, so neither two schedulers nor a leader that wakes up from a pause can fire a tick
-- twice, even after the first job of that tick (and its id) is gone.
local name, tick, epoch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local last = redis.call('HGET', KEYS[8], name)
if last then
  local last_tick, last_epoch = string.match(last, '^(%d+) (%d+)$')
  if last_epoch and epoch < tonumber(last_epoch) then return -4 end
  if last_tick and tick <= tonumber(last_tick) then return 0 end
end
local id = ARGV[4]
local job = KEYS[7] .. id
if redis.call('EXISTS', job) == 1 then return 0 end
local max_length = tonumber(redis.call('HGET', KEYS[5], 'max_length') or '0')
if max_length > 0 and redis.call('ZCARD', KEYS[1]) + 1 > max_length then return -3 end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'schedule'; fields[#fields + 1] = name
fields[#fields + 1] = 'tick_ms'; fields[#fields + 1] = ARGV[2]
local q = {pending = KEYS[1], seq = KEYS[3], marker = KEYS[6]}
create_pending_job(q, job, id, ARGV[5], tonumber(ARGV[6]), fields, now_ms())
redis.call('HSET', KEYS[8], name, ARGV[2] .. ' ' .. ARGV[3])
redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
return 1
