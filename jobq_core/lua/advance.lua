-- advance.lua: record what the leader fired for one schedule (next tick, last tick and job,
-- counters), only while the caller holds the leader lease and only for the revision of the
-- definition it planned with.
-- KEYS[1] leader  KEYS[2] schedules  KEYS[3] schedule
-- ARGV[1] token  ARGV[2] schedule name  ARGV[3] revision  ARGV[4] next tick ms
-- ARGV[5] last tick fired ms (0: none)  ARGV[6] its job id  ARGV[7] jobs created
-- ARGV[8] ticks missed
-- Returns 1; 0 the caller is not the leader (nothing written); -6 the schedule was changed or
--   deleted meanwhile (nothing written: the new definition's own next tick stands)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[3], 'rev') ~= ARGV[3] then return -6 end
local now = now_ms()
redis.call('HSET', KEYS[3], 'next_ms', ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('HSET', KEYS[3], 'last_tick_ms', ARGV[5], 'last_job_id', ARGV[6], 'last_fired_ms', now)
end
redis.call('HINCRBY', KEYS[3], 'fired', ARGV[7])
redis.call('HINCRBY', KEYS[3], 'missed', ARGV[8])
if redis.call('HGET', KEYS[3], 'enabled') == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
end
return 1
