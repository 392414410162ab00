-- release.lua: processing -> pending for a job a stopping worker hands back unstarted or unfinished.
-- KEYS[1] processing  KEYS[2] pending  KEYS[3] marker  KEYS[4] job
-- ARGV[1] job id  ARGV[2] lease token
-- Returns 1; -1 job missing; -2 lease not held
-- A hand-back is not a lost lease: the poison counter is left alone. The job goes to the head
-- of its priority band (push_front), as it was in flight.
local job = KEYS[4]
local refused = lease_check(job, ARGV[2])
if refused ~= 0 then return refused end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', job, 'lease')
redis.call('HSET', job, 'state', 'pending')
push_front(KEYS[2], KEYS[3], ARGV[1], redis.call('HGET', job, 'priority'))
return 1
