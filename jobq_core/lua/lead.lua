-- lead.lua: become or stay the scheduler leader. The lease is a hash with the owner's token
-- and a PEXPIRE (Redis time); every new leader gets a larger epoch, which fire.lua uses to
-- fence out an older leader that was paused and wakes up.
-- KEYS[1] leader  KEYS[2] epoch counter
-- ARGV[1] token  ARGV[2] lease ms  ARGV[3] owner (host:pid, for operators)
-- Returns {epoch (0: another scheduler leads), now ms, ms left on the leader's lease}
local now = now_ms()
local holder = redis.call('HGET', KEYS[1], 'token')
if holder == ARGV[1] then
  redis.call('HSET', KEYS[1], 'renewed_ms', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {tonumber(redis.call('HGET', KEYS[1], 'epoch')), now, tonumber(ARGV[2])}
end
if holder then return {0, now, redis.call('PTTL', KEYS[1])} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'epoch', epoch, 'owner', ARGV[3], 'since_ms', now,
           'renewed_ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {epoch, now, tonumber(ARGV[2])}
