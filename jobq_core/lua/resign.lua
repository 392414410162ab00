-- resign.lua: give up the scheduler lease (a stopping leader), so another takes over at once.
-- KEYS[1] leader
-- ARGV[1] token
-- Returns 1 resigned; 0 the caller did not hold the lease
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
