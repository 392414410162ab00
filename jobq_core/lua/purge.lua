-- purge.lua: delete jobs of one state (pending | scheduled | completed | failed | dead | cancelled).
-- KEYS[1] state set  KEYS[2] job prefix
-- ARGV[1] state name  ARGV[2] mode: 'ids' | 'upto'
--   ids:  ARGV[3..] job ids
--   upto: ARGV[3] score cutoff (snapshot taken by the caller)  ARGV[4] batch size
-- Returns {deleted, left} as requeue.lua. A job is only deleted if it is still in that state,
--   so a job that moved on meanwhile (e.g. was claimed) is never deleted from under a worker.
local ids = selected_ids(KEYS[1])
local deleted = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local job = KEYS[2] .. id
    local jtype = redis.call('TYPE', job)['ok']
    if jtype ~= 'hash' or redis.call('HGET', job, 'state') == ARGV[1] then
      redis.call('DEL', job, job .. ':attempts', job .. ':notify')
    end
    deleted = deleted + 1
  end
end
local left = 0
if ARGV[2] == 'upto' then left = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[3]) end
return {deleted, left}
