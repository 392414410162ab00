-- claim.lua: pending -> processing under a lease, for up to ARGV[1] jobs, queues in order.
-- KEYS: 10 per queue, in priority order of the queues:
--   +1 pending  +2 processing  +3 dead  +4 stats  +5 history  +6 marker  +7 meta  +8 job prefix
--   +9 scheduled  +10 seq  then one trailing key per queue (same order): where a pending key of
--   the wrong type is set aside.
-- ARGV[1] max jobs  ARGV[2] worker id  ARGV[3] lease ms  ARGV[4] dead ttl ms  ARGV[5] history size
-- ARGV[6] max due jobs promoted per queue (scheduled -> pending first, as promote.lua)
-- Returns {claimed, notes, next due ms (-1 none), now ms}: claimed = list of
--   {queue index, id, lease token, field, value, ...}; notes = strings describing entries moved
--   to dead or keys set aside.
-- A job past its expires_ms goes to dead "expired"; an id without a hash, or whose hash has the
-- wrong type, goes to dead with a reason; none of these count against ARGV[1].
local want = tonumber(ARGV[1])
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local dead_ttl, hist_size = tonumber(ARGV[4]), tonumber(ARGV[5])
local nq = math.floor(#KEYS / 11)
local soonest = -1
local now = now_ms()
local claimed, notes = {}, {}

local function bury(qi, job, id, reason)
  local b = (qi - 1) * 10
  redis.call('HSET', job, 'state', 'dead', 'reason', reason, 'finished_ms', now)
  retain(KEYS[b + 3], job, id, now, dead_ttl)
  redis.call('HINCRBY', KEYS[b + 4], 'dead', 1)
  bump_history(KEYS[b + 5], 'failed', now, hist_size)
  notes[#notes + 1] = 'dead ' .. id .. ': ' .. reason
end

for qi = 1, nq do
  if #claimed >= want then break end
  local b = (qi - 1) * 10
  local pending, prefix = KEYS[b + 1], KEYS[b + 8]
  local ptype = redis.call('TYPE', pending)['ok']
  if ptype ~= 'zset' and ptype ~= 'none' then
    -- Set the broken key aside so the queue works again; an operator can inspect it.
    redis.call('RENAME', pending, KEYS[nq * 10 + qi])
    notes[#notes + 1] = 'corrupt ' .. pending .. ' had type ' .. ptype .. '; moved to ' .. KEYS[nq * 10 + qi]
  elseif redis.call('HGET', KEYS[b + 7], 'paused') ~= '1' then
    promote_due(KEYS[b + 9], pending, KEYS[b + 10], KEYS[b + 6], prefix, now, tonumber(ARGV[6]))
    local due = next_due(KEYS[b + 9])
    if due >= 0 and (soonest < 0 or due < soonest) then soonest = due end
    while #claimed < want do
      local top = redis.call('ZPOPMIN', pending)
      if #top == 0 then break end
      local id = top[1]
      local job = prefix .. id
      local jtype = redis.call('TYPE', job)['ok']
      if jtype == 'none' then
        bury(qi, job, id, 'missing job data: the id was queued but its hash does not exist')
      elseif jtype ~= 'hash' then
        redis.call('RENAME', job, job .. ':corrupt')
        bury(qi, job, id, 'malformed job data: key had type ' .. jtype .. '; kept at ' .. job .. ':corrupt')
      else
        local expires = tonumber(redis.call('HGET', job, 'expires_ms') or '0') or 0
        if expires > 0 and now > expires then
          bury(qi, job, id, 'expired: ttl passed before the job started')
        else
          local deliveries = redis.call('HINCRBY', job, 'deliveries', 1)
          local token = worker .. '/' .. deliveries
          redis.call('HSET', job, 'state', 'processing', 'lease', token, 'worker', worker,
                     'started_ms', now)
          redis.call('ZADD', KEYS[b + 2], now + lease_ms, id)
          local entry = {qi, id, token}
          local fields = redis.call('HGETALL', job)
          for f = 1, #fields do entry[#entry + 1] = fields[f] end
          claimed[#claimed + 1] = entry
        end
      end
    end
    -- More left: keep the marker so another idle worker wakes up and shares the work.
    if redis.call('ZCARD', pending) > 0 then redis.call('ZADD', KEYS[b + 6], 0, 'm') end
  end
end
return {claimed, notes, soonest, now}
