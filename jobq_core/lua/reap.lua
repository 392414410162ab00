-- reap.lua: processing -> pending (or dead as poison) for jobs whose lease expired.
-- KEYS[1] processing  KEYS[2] pending  KEYS[3] dead  KEYS[4] seq  KEYS[5] marker
-- KEYS[6] stats  KEYS[7] history  KEYS[8] job prefix
-- KEYS[9] error groups index  KEYS[10] error group prefix (a poison job joins the group
--   grouping.signature gives it: type 'poison', the count of losses masked)
-- ARGV[1] max jobs per call  ARGV[2] max deliveries  ARGV[3] dead ttl ms  ARGV[4] history size
-- ARGV[5] max error groups  ARGV[6] max ids kept per group
-- Returns a flat list: id, outcome ('pending' | 'dead'), id, outcome, ...
-- The lease field is cleared, so a late completion by the old holder is refused. A requeued
-- job goes to the head of its priority band (push_front), not behind the backlog.
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local job = KEYS[8] .. id
  local jtype = redis.call('TYPE', job)['ok']
  local reason = nil
  if jtype == 'hash' then
    redis.call('HDEL', job, 'lease')
    local lost = redis.call('HINCRBY', job, 'lost', 1)
    local record = '{"outcome":"lease expired","worker":'
      .. cjson.encode(redis.call('HGET', job, 'worker') or '') .. ',"finished_ms":' .. now .. '}'
    append_attempt(job .. ':attempts', record, 0)
    if lost >= tonumber(ARGV[2]) then
      reason = 'poison: lost its lease ' .. lost .. ' times (worker died or stalled)'
    end
  else
    if jtype ~= 'none' then redis.call('RENAME', job, job .. ':corrupt') end
    reason = 'missing job data: found in processing without its hash'
  end
  if reason then
    redis.call('HSET', job, 'state', 'dead', 'reason', reason, 'finished_ms', now)
    if jtype == 'hash' then
      local task = redis.call('HGET', job, 'task') or ''
      local message = 'lost its lease <n> times (worker died or stalled)'
      local gid = string.sub(redis.sha1hex(task .. '\0poison\0' .. message), 1, 16)
      join_group(KEYS[9], KEYS[10], gid, task, 'poison', message, job, id, now, reason,
                 tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[3]))
    end
    retain(KEYS[3], job, id, now, tonumber(ARGV[3]))
    redis.call('HINCRBY', KEYS[6], 'dead', 1)
    bump_history(KEYS[7], 'failed', now, tonumber(ARGV[4]))
    out[#out + 1] = id; out[#out + 1] = 'dead'
  else
    redis.call('HSET', job, 'state', 'pending')
    redis.call('HINCRBY', KEYS[6], 'reaped', 1)
    push_front(KEYS[2], KEYS[5], id, redis.call('HGET', job, 'priority'))
    out[#out + 1] = id; out[#out + 1] = 'pending'
  end
end
return out
