-- release.lua: processing -> pending for jobs a worker hands back unstarted or unfinished (a
-- stopping worker's; jobs held behind long ones, Pool.stuck_waiting), each only if the caller
-- still holds its lease. Batched per queue (Scripts.release_many): one round trip for up to
-- RELEASE_CHUNK jobs, where one call a job kept the worker's main loop from claiming.
-- KEYS[1] processing  KEYS[2] pending  KEYS[3] marker  KEYS[4] job prefix
-- ARGV per job: id, lease token
-- Returns one code per job: 1 handed back; -1 job missing; -2 lease not held (that job was not
-- changed; the codes of scripts.Code).
-- A hand-back is not a lost lease: the poison counter is left alone. A job goes to the head
-- of its priority band (push_front), as it was in flight.
local out = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local job = KEYS[4] .. id
  -- pcall: a key of another type under a job's name (written by hand) must not stop the
  -- hand-back of the rest of the batch; nothing of ours is there to hand back.
  local f = redis.pcall('HMGET', job, 'lease', 'priority')
  local code = 1
  if f.err then
    code = -1
  elseif f[1] ~= ARGV[i + 1] then
    code = -2
    if not f[1] and redis.call('EXISTS', job) == 0 then code = -1 end
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', job, 'lease')
    redis.call('HSET', job, 'state', 'pending')
    push_front(KEYS[2], KEYS[3], id, f[2])
  end
  out[#out + 1] = code
end
return out
