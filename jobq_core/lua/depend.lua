-- depend.lua: register a deferred job as a dependent of one of its parents (no state change).
-- KEYS[1] parent job  KEYS[2] parent's dependents set
-- ARGV[1] child ref ('queue/id')
-- Returns the parent's state if it already ended (completed | failed | dead | cancelled: the
--   caller resolves the child at once) or 'missing' (no such job); otherwise adds the child to
--   the dependents set, flags the parent's hash (field 'dependents', seen by the worker that
--   claims it, which then resolves the dependents when the parent ends) and returns 'waiting'.
local state = redis.pcall('HGET', KEYS[1], 'state')
if type(state) ~= 'string' then return 'missing' end
if state == 'completed' or state == 'failed' or state == 'dead' or state == 'cancelled' then
  return state
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'dependents', '1')
return 'waiting'
