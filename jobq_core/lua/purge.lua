-- purge.lua: delete jobs of one state (pending | scheduled | completed | failed | dead | cancelled).
-- KEYS[1] state set  KEYS[2] job prefix  KEYS[3] error group prefix (a purged job leaves its
--   error group)
-- ARGV[1] state name  ARGV[2] mode: 'ids' | 'upto'
--   ids:  ARGV[3..] job ids
--   upto: ARGV[3] score cutoff (snapshot taken by the caller)  ARGV[4] batch size
--         ARGV[5] (optional) what the snapshot saw last, so jobs that arrived later are left
--         alone: for pending the queue's seq counter (a newer job has a larger seq part in
--         its score, whatever its priority); for scheduled the Redis time in ms (a newer job
--         was enqueued or requeued after it). A score cutoff alone cannot tell them apart there: a new
--         higher-priority or earlier-due job scores below the cutoff.
-- Returns {deleted, left} as requeue.lua. A job is only deleted if it is still in that state,
--   so a job that moved on meanwhile (e.g. was claimed) is never deleted from under a worker.
local deleted = 0
local function delete(id)
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local job = KEYS[2] .. id
    local jtype = redis.call('TYPE', job)['ok']
    if jtype ~= 'hash' or redis.call('HGET', job, 'state') == ARGV[1] then
      local group = jtype == 'hash' and redis.call('HGET', job, 'error_group')
      if group then redis.call('ZREM', KEYS[3] .. group .. ':ids', id) end
      redis.call('DEL', job, job .. ':attempts', job .. ':notify', job .. ':logs')
    end
    deleted = deleted + 1
  end
end

local since = tonumber(ARGV[5] or '0') or 0
if ARGV[2] == 'upto' and since > 0 then
  -- Walk the range past the jobs that arrived after the snapshot (they stay, so the next
  -- window starts after them), deleting up to a batch and examining at most ten.
  local batch, skipped, examined = tonumber(ARGV[4]), 0, 0
  while deleted < batch and examined < batch * 10 do
    local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', skipped, batch)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      examined = examined + 1
      local newer
      if ARGV[1] == 'pending' then
        newer = (tonumber(redis.call('ZSCORE', KEYS[1], id)) or 0) % PRIORITY_BAND > since
      else
        local t = redis.pcall('HMGET', KEYS[2] .. id, 'enqueued_ms', 'requeued_ms')
        newer = not t.err and ((tonumber(t[1] or '0') or 0) > since
                               or (tonumber(t[2] or '0') or 0) > since)
      end
      if newer then skipped = skipped + 1 else delete(id) end
    end
  end
  return {deleted, redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[3]) - skipped}
end

for _, id in ipairs(selected_ids(KEYS[1])) do delete(id) end
local left = 0
if ARGV[2] == 'upto' then left = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[3]) end
return {deleted, left}
