-- claim.lua: pending -> processing under a lease, for up to ARGV[1] jobs, queues in order.
-- KEYS: 13 per queue, in priority order of the queues:
--   +1 pending  +2 processing  +3 dead  +4 stats  +5 history  +6 marker  +7 meta  +8 job prefix
--   +9 scheduled  +10 seq  +11 limits  +12 limited  +13 limit prefix
--   then one trailing key per queue (same order): where a pending key of the wrong type is
--   set aside; last, the worker's claim record (Keyspace.claim_record of the first queue).
-- ARGV[1] max jobs  ARGV[2] worker id  ARGV[3] lease ms  ARGV[4] dead ttl ms  ARGV[5] history size
-- ARGV[6] max due jobs promoted per queue (scheduled -> pending first, as promote.lua); also
--   the most parked jobs released per limit key per call; ten times it bounds the jobs parked
-- ARGV[7] request id: a claim re-sent with the id of one that leased jobs (its reply was
--   lost) claims nothing new and answers with the jobs of that one it still holds, as it
--   answered (the claim record keeps their ids for a lease, whitespace and '%' in an id
--   written as %XX: another client may store any id, and the record splits on spaces;
--   jobq_core/escapes.py says how the other escapes of ids differ)
-- ARGV[8] '1': the request id is a new one, never sent before (so no record can hold it): the
--   record is not read. Anything else (or absent): it may be a re-send, the record is read.
-- Returns {claimed, notes, next due ms (-1 none), now ms, lease left ms}: claimed = list of
--   {queue index, id, lease token, deliveries, limit key held ('' none), {field, value, ...}}
--   with the fields as they were before the claim (the client adds what the claim set:
--   state, lease, worker, started_ms = now, deliveries, limit); lease left ms = -1 for a new
--   claim (leased for ARGV[3] from now), for a re-sent one what is left of the leases its
--   first send gave (the record's PTTL: written with them), which the client times the
--   jobs by (they may be nearly spent, or a claim on wake's short pick-up leases); notes = strings describing
--   entries moved to dead or keys set aside. The next due time also covers parked jobs
--   waiting for a rate.
-- A job past its expires_ms goes to dead "expired"; an id without a hash, or whose hash has the
-- wrong type, goes to dead with a reason; none of these count against ARGV[1].
--
-- Limits (limits.py). A job's limit key is its 'limit_key' field, else its task name. A key in
-- the queue's limits hash ('<concurrency> <rate> <per ms>', 0 = no cap) caps, for all workers,
-- how many of its jobs are processing at once and how many start in any window of <per> ms
-- (a sliding log of start times, '<limit prefix><key>:started'). A job over its limit is *parked*, not claimed: moved with its pending score
-- to the key's parked zset ('<limit prefix><key>:parked'), so jobs behind it still run and
-- nobody polls it. The limited zset holds keys with parked jobs -> when they may have room:
-- the time a start leaves the rate window, or 0 for "when one of its jobs stops processing" (checked at every
-- claim; limits.LimitHook sets the marker when such a job ends). Parked jobs go back to
-- pending in their old order as room appears. Processing jobs of a key with a concurrency cap
-- are in '<limit prefix><key>:running'; members that stopped processing are dropped lazily,
-- when the set is at the cap, so no other script needs to know about limits.
local want = tonumber(ARGV[1])
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local dead_ttl, hist_size = tonumber(ARGV[4]), tonumber(ARGV[5])
local STRIDE = 13
local nq = math.floor(#KEYS / (STRIDE + 1))
local batch = tonumber(ARGV[6])
local soonest = -1
local now = now_ms()
local now_s = tostring(now)
local claimed, notes, nclaimed = {}, {}, 0
local record, request = KEYS[#KEYS], ARGV[7] .. '\n'

-- The reply of the claim that wrote the record ('<request>\n<now> <next due> <queue index>
-- <id> ...'), for its jobs this worker still holds under the lease that claim gave them.
local function replay(packed, left)
  local at, due, rest = string.match(packed, '^[^\n]*\n(%d+) (%-?%d+)(.*)$')
  for qi, id in string.gmatch(rest, ' (%d+) (%S+)') do
    qi = tonumber(qi)
    if string.find(id, '%', 1, true) then
      id = string.gsub(id, '%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end)
    end
    local job = KEYS[(qi - 1) * STRIDE + 8] .. id
    local f = redis.pcall('HMGET', job, 'lease', 'worker', 'started_ms', 'deliveries', 'limit')
    if not f.err and f[1] and f[2] == worker and f[3] == at then
      claimed[#claimed + 1] = {qi, id, f[1], f[4], f[5] or '', redis.call('HGETALL', job)}
    end
  end
  return {claimed, notes, tonumber(due), now, left}
end

if ARGV[8] ~= '1' and redis.call('GETRANGE', record, 0, #request - 1) == request then
  return replay(redis.call('GET', record), redis.call('PTTL', record))
end

local function bury(qi, job, id, reason)
  local b = (qi - 1) * STRIDE
  redis.call('HSET', job, 'state', 'dead', 'reason', reason, 'finished_ms', now)
  retain(KEYS[b + 3], job, id, now, dead_ttl)
  redis.call('HINCRBY', KEYS[b + 4], 'dead', 1)
  bump_history(KEYS[b + 5], 'failed', now, hist_size)
  notes[#notes + 1] = 'dead ' .. id .. ': ' .. reason
end

-- Limits of one queue: lim = {limits=, limited=, lp= (limit prefix), prefix= (job prefix),
-- cache = {key -> {conc, rate, per} or false}, blocked = {key -> when, found in this call}}.
local function limit_of(lim, key)
  local v = lim.cache[key]
  if v == nil then
    v = false
    local raw = redis.call('HGET', lim.limits, key)
    if raw then
      local c, r, p = string.match(raw, '^(%d+) (%d+) (%d+)$')
      if c then v = {conc = tonumber(c), rate = tonumber(r), per = tonumber(p)} end
    end
    lim.cache[key] = v
  end
  return v
end

local function running(lim, key, cap)
  local set = lim.lp .. key .. ':running'
  local n = redis.call('SCARD', set)
  if n >= cap then
    for _, id in ipairs(redis.call('SMEMBERS', set)) do
      if redis.pcall('HGET', lim.prefix .. id, 'state') ~= 'processing' then
        redis.call('SREM', set, id)
        n = n - 1
      end
    end
  end
  return n
end

-- Starts of `key` in the last period (a sliding log, so no window of `per` ms ever holds more
-- than `rate` starts), and when the oldest of them leaves the window.
local function rate_window(lim, key, l)
  local log = lim.lp .. key .. ':started'
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - l.per)
  local n = redis.call('ZCARD', log)
  local free_at = now
  if n > 0 then free_at = tonumber(redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')[2]) + l.per end
  return n, free_at, log
end

-- How many jobs of `key` may start now, and when there may be room if none (0: when one of
-- its processing jobs stops).
local function room(lim, key, l)
  if not l then return math.huge, 0 end
  local free = math.huge
  if l.conc > 0 then
    free = l.conc - running(lim, key, l.conc)
    if free <= 0 then return 0, 0 end
  end
  if l.rate > 0 then
    local n, free_at = rate_window(lim, key, l)
    if n >= l.rate then return 0, free_at end
    if l.rate - n < free then free = l.rate - n end
  end
  return free, 0
end

-- Take a place for job `id` of `key` if the limit has room; else return false and when.
local function admit(lim, key, l, id)
  if lim.blocked[key] then return false, lim.blocked[key] end
  if l.conc > 0 and running(lim, key, l.conc) >= l.conc then return false, 0 end
  if l.rate > 0 then
    local n, free_at, log = rate_window(lim, key, l)
    if n >= l.rate then return false, free_at end
    redis.call('ZADD', log, now, id .. '@' .. now)
    redis.call('PEXPIRE', log, l.per + 1000)
  end
  if l.conc > 0 then redis.call('SADD', lim.lp .. key .. ':running', id) end
  return true
end

local function park(lim, key, id, score, when)
  lim.blocked[key] = when
  redis.call('ZADD', lim.lp .. key .. ':parked', score, id)
  redis.call('ZADD', lim.limited, when, key)
end

-- Move parked jobs of keys that have room again back to pending (bounded per call).
local function unpark(lim, pending)
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', lim.limited, '-inf', now, 'LIMIT', 0, 20)) do
    local parked = lim.lp .. key .. ':parked'
    local free, when = room(lim, key, limit_of(lim, key))
    local moved = 0
    while moved < free and moved < batch do
      local e = redis.call('ZPOPMIN', parked)
      if #e == 0 then break end
      -- Only jobs still pending: one cancelled or purged while parked is dropped here.
      if redis.pcall('HGET', lim.prefix .. e[1], 'state') == 'pending' then
        redis.call('ZADD', pending, e[2], e[1])
        moved = moved + 1
      end
    end
    if redis.call('EXISTS', parked) == 0 then
      redis.call('ZREM', lim.limited, key)
    elseif moved < batch then
      redis.call('ZADD', lim.limited, when, key)
    end
  end
end

-- Set a pending key of the wrong type aside so the queue works again (an operator can
-- inspect it); true if it was set aside.
local function set_aside(qi, pending)
  local ptype = redis.call('TYPE', pending)['ok']
  if ptype == 'zset' or ptype == 'none' then return false end
  redis.call('RENAME', pending, KEYS[nq * STRIDE + qi])
  notes[#notes + 1] = 'corrupt ' .. pending .. ' had type ' .. ptype .. '; moved to ' .. KEYS[nq * STRIDE + qi]
  return true
end

for qi = 1, nq do
  if nclaimed >= want then break end
  local b = (qi - 1) * STRIDE
  local pending, prefix = KEYS[b + 1], KEYS[b + 8]
  -- The common claim (nothing due, no limits) reads the next due time, the limit keys and
  -- the paused flag with one command each, and checks the pending key's type only when it
  -- writes to it or its pop fails: every command here runs once per claim.
  local due = next_due(KEYS[b + 9])
  local limited = redis.call('EXISTS', KEYS[b + 11], KEYS[b + 12]) > 0
  if (due >= 0 and due <= now or limited) and set_aside(qi, pending) then
    -- nothing to claim from this queue in this call
  elseif redis.call('HGET', KEYS[b + 7], 'paused') ~= '1' then
    if due >= 0 and due <= now then
      promote_due(KEYS[b + 9], pending, KEYS[b + 10], KEYS[b + 6], prefix, now, batch)
      due = next_due(KEYS[b + 9])
    end
    if due >= 0 and (soonest < 0 or due < soonest) then soonest = due end
    local lim = nil
    if limited then
      lim = {limits = KEYS[b + 11], limited = KEYS[b + 12], lp = KEYS[b + 13], prefix = prefix,
             cache = {}, blocked = {}}
      unpark(lim, pending)
    end
    local parked_n = 0
    local leased, nleased = {}, 0  -- deadline, id, ... for one ZADD into processing
    local emptied = false
    while not emptied and nclaimed < want and parked_n < batch * 10 do
      local top = redis.pcall('ZPOPMIN', pending, want - nclaimed)
      if top.err then
        if set_aside(qi, pending) then break end
        return redis.error_reply(top.err)
      end
      if #top == 0 then break end
      -- Fewer than asked: the queue is empty now, no need to pop again to find out.
      emptied = #top < 2 * (want - nclaimed)
      for t = 1, #top, 2 do
        local id = top[t]
        local job = prefix .. id
        -- One read gives the payload, the expiry, the limit key and the delivery count; a
        -- key of another type makes HGETALL fail, which pcall turns into a table with err.
        local raw = redis.pcall('HGETALL', job)
        if raw.err then
          local jtype = redis.call('TYPE', job)['ok']
          redis.call('RENAME', job, job .. ':corrupt')
          bury(qi, job, id, 'malformed job data: key had type ' .. jtype .. '; kept at ' .. job .. ':corrupt')
        elseif #raw == 0 then
          bury(qi, job, id, 'missing job data: the id was queued but its hash does not exist')
        else
          -- The few fields the claim needs, read off the flat reply (no table per job:
          -- this loop runs for every job claimed).
          local expires, delivered, limit_key, task, handbacks = 0, 0, nil, nil, nil
          for k = 1, #raw, 2 do
            local name = raw[k]
            if name == 'expires_ms' then expires = tonumber(raw[k + 1]) or 0
            elseif name == 'deliveries' then delivered = tonumber(raw[k + 1]) or 0
            elseif name == 'limit_key' then limit_key = raw[k + 1]
            elseif name == 'task' then task = raw[k + 1]
            elseif name == 'handbacks' then handbacks = raw[k + 1]
            end
          end
          local expired = expires > 0 and now > expires
          local key, l = nil, false
          if lim and not expired then
            key = limit_key or task
            if key then l = limit_of(lim, key) end
          end
          local ok, when = true, 0
          if l then ok, when = admit(lim, key, l, id) end
          if expired then
            bury(qi, job, id, 'expired: ttl passed before the job started')
          elseif not ok then
            park(lim, key, id, top[t + 1], when)
            parked_n = parked_n + 1
          else
            local deliveries = tostring(delivered + 1)
            local token = worker .. '/' .. deliveries
            -- unknown.lua takes a delivery back: the hand-back count keeps tokens unique.
            if handbacks then token = token .. '.' .. handbacks end
            local held = ''
            if l and l.conc > 0 then
              held = key
              redis.call('HSET', job, 'state', 'processing', 'lease', token, 'worker', worker,
                         'started_ms', now_s, 'deliveries', deliveries, 'limit', key)
            else
              redis.call('HSET', job, 'state', 'processing', 'lease', token, 'worker', worker,
                         'started_ms', now_s, 'deliveries', deliveries)
            end
            nleased = nleased + 2
            leased[nleased - 1] = now + lease_ms; leased[nleased] = id
            nclaimed = nclaimed + 1
            claimed[nclaimed] = {qi, id, token, deliveries, held, raw}
          end
        end
      end
    end
    if nleased > 0 then chunked('ZADD', KEYS[b + 2], leased) end
    -- More left: keep the marker so another idle worker wakes up and shares the work. A pop
    -- that got fewer than asked emptied the queue.
    if not emptied and redis.call('ZCARD', pending) > 0 then redis.call('ZADD', KEYS[b + 6], 0, 'm') end
    if lim then
      local nxt = redis.call('ZRANGEBYSCORE', lim.limited, '(' .. now, '+inf', 'LIMIT', 0, 1,
                             'WITHSCORES')
      if #nxt > 0 and (soonest < 0 or tonumber(nxt[2]) < soonest) then
        soonest = tonumber(nxt[2])
      end
    end
  end
end
if nclaimed > 0 then
  local rec = {request .. now_s, soonest}
  for i = 1, nclaimed do
    local id = claimed[i][2]
    if string.find(id, '[%s%%]') then  -- not in an id jobq makes: see ARGV[7]
      id = string.gsub(id, '[%s%%]', function(c) return string.format('%%%02X', string.byte(c)) end)
    end
    rec[2 * i + 1] = claimed[i][1]; rec[2 * i + 2] = id
  end
  redis.call('SET', record, table.concat(rec, ' '), 'PX', lease_ms)
end
return {claimed, notes, soonest, now, -1}
