-- release.lua: processing -> pending for a job a stopping worker hands back unstarted or unfinished.
-- KEYS[1] processing  KEYS[2] pending  KEYS[3] seq  KEYS[4] marker  KEYS[5] job
-- ARGV[1] job id  ARGV[2] lease token
-- Returns 1; -1 job missing; -2 lease not held
-- A hand-back is not a lost lease: the poison counter is left alone. The job goes to the head
-- of its priority band (push_front), as it was in flight. KEYS[3] (seq) is no longer used.
local job = KEYS[5]
local refused = lease_check(job, ARGV[2])
if refused ~= 0 then return refused end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', job, 'lease')
redis.call('HSET', job, 'state', 'pending')
push_front(KEYS[2], KEYS[4], ARGV[1], redis.call('HGET', job, 'priority'))
return 1
