-- watch.lua: register a result waiter on a job unless it already ended (no state change).
-- KEYS[1] job
-- Returns the job's state (waiter registered only when the state is not final);
--   false (nil) when the job does not exist.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'completed' or state == 'failed' or state == 'dead' or state == 'cancelled' then
  return state
end
redis.call('HINCRBY', KEYS[1], 'waiters', 1)
return state
