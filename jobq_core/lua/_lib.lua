-- _lib.lua: helpers, each put in front of the scripts that use it by scripts.py (not a
-- transition itself). Keep one definition per blank-line separated block, in use order.
-- Time always comes from Redis TIME so no worker's clock can move a deadline.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Pending score: higher priority first, FIFO (by a per-queue counter) within a priority.
-- Priorities are clamped to -100..100 by the client, so the score stays below 2^53.
local PRIORITY_BAND = 10000000000000

-- `marker` may be nil when the caller sets the marker once for a whole batch.
local function push_pending(pending, seq_key, marker, id, priority)
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', pending, (100 - (tonumber(priority) or 0)) * PRIORITY_BAND + seq, id)
  if marker then redis.call('ZADD', marker, 0, 'm') end
end

-- ZADD/ZREM many members in chunks (Lua's unpack has a stack limit of a few thousand values).
local function chunked(command, key, args)
  for i = 1, #args, 2000 do
    redis.call(command, key, unpack(args, i, math.min(i + 1999, #args)))
  end
end

-- Scheduled scores from 2^52 ms up (far beyond any due time) mark *deferred* jobs: waiting on
-- their dependencies, never promoted by time; resolve.lua releases them. The score is
-- DEFERRED_MS + the time the dependencies are next checked (see dependencies.py).
local DEFERRED_MS = 4503599627370496

-- The fields a new job's hash gets after its own (`fields`: a flat list, extended here): when
-- it was enqueued; when it expires, or its ttl when that only starts once it is released
-- (deferred, delay_ms -1); its state (pending, or scheduled when delay_ms is not 0).
-- Returns the state.
local function add_new_job_fields(fields, delay_ms, ttl_ms, now)
  local m = #fields
  fields[m + 1] = 'enqueued_ms'; fields[m + 2] = now
  m = m + 2
  if ttl_ms > 0 and delay_ms >= 0 then
    fields[m + 1] = 'expires_ms'; fields[m + 2] = now + delay_ms + ttl_ms
    m = m + 2
  elseif ttl_ms > 0 then
    fields[m + 1] = 'ttl_ms'; fields[m + 2] = ttl_ms
    m = m + 2
  end
  local state = 'pending'
  if delay_ms ~= 0 then state = 'scheduled' end
  fields[m + 1] = 'state'; fields[m + 2] = state
  return state
end

-- Write one new pending job's hash (`fields`: its own, extended here) and queue it.
-- q = {pending=, seq=, marker=}. (enqueue.lua writes its batches itself.)
local function create_pending_job(q, job, id, priority, ttl_ms, fields, now)
  add_new_job_fields(fields, 0, ttl_ms, now)
  redis.call('HSET', job, unpack(fields))
  push_pending(q.pending, q.seq, q.marker, id, priority)
end

-- Put a job that was already in flight (lease expired, or handed back by a stopping worker)
-- at the head of its priority band: it had reached the front once, and sending it behind
-- the whole backlog would delay its rerun by the backlog's length. Score = band + 0, below
-- every seq (>= 1) of the band; ties between such jobs are broken by id.
local function push_front(pending, marker, id, priority)
  redis.call('ZADD', pending, (100 - (tonumber(priority) or 0)) * PRIORITY_BAND, id)
  redis.call('ZADD', marker, 0, 'm')
end

-- One ring of per-minute counts: field '<kind>:<minute mod size>' holds '<minute> <count>',
-- so the hash never holds more than size fields per kind whatever the uptime.
local function bump_history(history, kind, now, size, by)
  local minute = math.floor(now / 60000)
  local field = kind .. ':' .. (minute % size)
  local cur = redis.call('HGET', history, field)
  local step = by or 1
  local count = step
  if cur then
    local sp = string.find(cur, ' ', 1, true)
    if sp and tonumber(string.sub(cur, 1, sp - 1)) == minute then
      count = (tonumber(string.sub(cur, sp + 1)) or 0) + step
    end
  end
  redis.call('HSET', history, field, minute .. ' ' .. count)
end

-- Run-time histograms (runtimes.py reads them, Keyspace.runtime_prefix describes them): the
-- upper bounds of the buckets in ms, log-spaced from 1 ms to 10 min; bucket #RUNTIME_BOUNDS
-- counts the longer ones (+Inf). runtimes.BUCKETS_MS must be the same list. Run times come
-- in whole ms, truncated (3 means 3.0 to 3.99 ms), so a bucket takes those below its bound.
local RUNTIME_BOUNDS = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
                        30000, 60000, 120000, 300000, 600000}
-- Count one attempt of `task` that ran `ms` into acc (task -> bucket, 'sum', 'fail' ->
-- count) for add_runtimes, so a batch of many jobs of a few tasks writes a few fields.
local function count_runtime(acc, task, ms, failed)
  local bucket = #RUNTIME_BOUNDS
  for i = 1, bucket do
    if ms < RUNTIME_BOUNDS[i] then bucket = i - 1; break end
  end
  local t = acc[task]
  if not t then t = {sum = 0, fail = 0}; acc[task] = t end
  t[bucket] = (t[bucket] or 0) + 1
  t.sum = t.sum + ms
  if failed then t.fail = t.fail + 1 end
end

-- Add counted run times to this minute's hash of the ring (prefix .. minute mod size) and to
-- the lifetime totals (prefix .. 'all', for /metrics: Prometheus wants counters that only
-- grow). A slot still holding an older minute is cleared first, and expires when the ring
-- comes round to it, so memory stays bounded whatever the uptime. Past RUNTIME_MAX_FIELDS
-- (a task name per call would be a bug elsewhere) nothing more is recorded that minute.
local RUNTIME_MAX_FIELDS = 20000
local function add_runtimes(prefix, size, now, acc)
  local minute = math.floor(now / 60000)
  local key = prefix .. (minute % size)
  if tonumber(redis.call('HGET', key, 'm')) ~= minute then
    redis.call('DEL', key)
    redis.call('HSET', key, 'm', minute)
    redis.call('PEXPIRE', key, size * 60000)
  elseif redis.call('HLEN', key) > RUNTIME_MAX_FIELDS then
    return
  end
  local total = prefix .. 'all'
  for task, counts in pairs(acc) do
    for what, n in pairs(counts) do
      if n ~= 0 then
        local field = task .. '|' .. what
        redis.call('HINCRBY', key, field, n)
        redis.call('HINCRBY', total, field, n)
      end
    end
  end
end

-- Wake every result waiter registered by watch.lua (pushes nothing when nobody waits).
local function notify_waiters(job, notify)
  local waiters = tonumber(redis.call('HGET', job, 'waiters') or '0')
  if waiters > 0 then
    for _ = 1, waiters do redis.call('RPUSH', notify, '1') end
    redis.call('EXPIRE', notify, 300)
    redis.call('HDEL', job, 'waiters')
  end
end

-- Drop a bounded number of entries of a terminal zset whose hashes have already expired.
local function trim_expired(set, now)
  local old = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, 100)
  if #old > 0 then redis.call('ZREM', set, unpack(old)) end
end

-- Put a job into a terminal zset scored by its retention expiry, and expire its hash, its
-- attempt log (job .. ':attempts', which a retry or a lost lease left without a TTL) and its
-- captured output (job .. ':logs', Keyspace.logs: none while it runs).
local function retain(set, job, id, now, ttl_ms)
  if ttl_ms > 0 then
    redis.call('ZADD', set, now + ttl_ms, id)
    redis.call('PEXPIRE', job, ttl_ms)
    redis.call('PEXPIRE', job .. ':attempts', ttl_ms)
    redis.call('PEXPIRE', job .. ':logs', ttl_ms)
  else
    redis.call('DEL', job, job .. ':attempts', job .. ':logs')
  end
  trim_expired(set, now)
end

local function append_attempt(attempts, record, ttl_ms)
  if record ~= '' then
    redis.call('RPUSH', attempts, record)
    redis.call('LTRIM', attempts, -25, -1)
    if ttl_ms > 0 then redis.call('PEXPIRE', attempts, ttl_ms) end
  end
end

-- Move up to `limit` due jobs from scheduled to pending; returns how many moved.
local function promote_due(scheduled, pending, seq_key, marker, prefix, now, limit)
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled, id)
    local job = prefix .. id
    local priority = 0
    if redis.call('TYPE', job)['ok'] == 'hash' then
      redis.call('HSET', job, 'state', 'pending')
      priority = redis.call('HGET', job, 'priority')
    end
    -- An id without a proper hash still goes to pending: claim.lua buries it with a reason.
    push_pending(pending, seq_key, marker, id, priority)
  end
  return #due
end

local function next_due(scheduled)
  local nxt = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  if #nxt == 0 then return -1 end
  return tonumber(nxt[2])
end

-- A job just scheduled at `due` that is the first due now: touch the marker. An idle worker
-- blocks until the earliest due time its last claim saw (or its wait times out), so it would
-- not know of an earlier one; the worker woken claims (nothing yet), learns the due time
-- from the claim's reply and ends its next wait then (Fetcher.wait). One ZRANGE, only where
-- a job is scheduled; nothing is touched when an earlier job is already due first.
local function wake_if_first_due(scheduled, marker, due)
  if next_due(scheduled) >= due then redis.call('ZADD', marker, 0, 'm') end
end


-- The ids an admin script acts on (requeue.lua, purge.lua): ARGV[2] 'ids' -> ARGV[3..];
-- 'upto' -> one batch (ARGV[4]) of `set` with scores up to the snapshot cutoff ARGV[3].
local function selected_ids(set)
  if ARGV[2] == 'upto' then
    return redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
  end
  local ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
  return ids
end

-- 0 if `token` holds the job's lease; else the script's code: -1 job missing, -2 not held.
local function lease_check(job, token)
  local held = redis.call('HGET', job, 'lease')
  if held == token then return 0 end
  if not held and redis.call('EXISTS', job) == 0 then return -1 end
  return -2
end

-- A settle (complete.lua, fail.lua) re-sent because its reply was lost answers as the first
-- send did, not "lease not held": the caller runs the job's callbacks and resolves its
-- dependents on that answer. The first send leaves '<code> <lease token>' in the job's
-- 'settled' field, or, when it deleted the job (a retention of 0), in job .. ':settled'
-- (written by tombstone, kept SETTLED_MS: longer than a worker retries a settle).
local SETTLED_MS = 600000
local function tombstone(job, code, token)
  redis.call('SET', job .. ':settled', code .. ' ' .. token, 'PX', SETTLED_MS)
end

-- A settle of `job` under `token` that does not find its lease (`mark`: the job's 'settled'
-- field, false if none): the code its first send answered when it settled the job under that
-- token; else -1 (the job is missing) or -2 (the lease is not held). The tombstone counts only
-- while the job is missing: a job enqueued again under its id has new leases.
local function resettled(job, mark, token)
  local exists = mark or redis.call('EXISTS', job) == 1
  if not exists then mark = redis.call('GET', job .. ':settled') end
  if mark then
    local code, by = string.match(mark, '^(%d) (.*)$')
    if by == token then return tonumber(code) end
  end
  return exists and -2 or -1
end

-- A job that ended failed or dead joins its error group (grouping.py; fail.lua, reap.lua):
-- the group's hash (task, type, message, count, first_ms, last_ms, sample_id, sample), its
-- ids zset (id -> ms; ids older than keep_ms go, and the oldest past max_ids) and the queue's
-- index of groups (group id -> last seen ms; the least recently seen past max_groups goes).
local function join_group(index, prefix, gid, task, etype, message, job, id, now, sample,
                          max_groups, max_ids, keep_ms)
  local group = prefix .. gid
  if redis.call('HSETNX', group, 'first_ms', now) == 1 then
    redis.call('HSET', group, 'task', task, 'type', etype, 'message', message)
  end
  redis.call('HINCRBY', group, 'count', 1)
  redis.call('HSET', group, 'last_ms', now, 'sample_id', id, 'sample', string.sub(sample, -4000))
  redis.call('ZADD', group .. ':ids', now, id)
  redis.call('ZREMRANGEBYSCORE', group .. ':ids', '-inf', now - keep_ms - 1)
  if redis.call('ZCARD', group .. ':ids') > max_ids then redis.call('ZPOPMIN', group .. ':ids') end
  redis.call('HSET', job, 'error_group', gid)
  redis.call('ZADD', index, now, gid)
  if redis.call('ZCARD', index) > max_groups then
    local oldest = redis.call('ZPOPMIN', index)
    redis.call('UNLINK', prefix .. oldest[1], prefix .. oldest[1] .. ':ids')
  end
end
