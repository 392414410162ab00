-- enqueue.lua: new jobs -> pending, scheduled (delayed) or deferred (waiting on dependencies).
-- One call per batch.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] stats  KEYS[5] meta
-- KEYS[6] marker  KEYS[7] job prefix  KEYS[8] history  KEYS[9] unique lock prefix
-- ARGV[1] number of jobs  ARGV[2] history size, then per job one record, either
--   full:  id, '+', priority, delay_ms (-1: deferred), ttl_ms, unique key ('' none),
--          unique window ms, nfields, field1, value1, ... (task, kwargs, options), args
--   short: id, '=', args -- everything but id and args as in the last full record
--   where args is the positional args JSON, '' for none (then no args field is stored).
--   The short form keeps a batch of calls to one task small: ARGV strings cost Redis time.
-- Returns a list with one entry per job: 1 created; 0 a job with this id already exists; or
--   the id (a string) of the pending/scheduled/processing job that holds its unique key;
--   or -3 (whole batch refused, nothing written) when meta.max_length would be exceeded.
-- A unique key is a lock (unique prefix .. key -> job id, expiring after the window); it is
-- free again as soon as its holder reached any other state, so nothing has to release it.
local n = tonumber(ARGV[1])
local max_length = tonumber(redis.call('HGET', KEYS[5], 'max_length') or '0')
if max_length > 0 and redis.call('ZCARD', KEYS[1]) + n > max_length then
  return -3
end
-- No marker, seq or pending ZADD per job: one of each for the batch, below. Seqs of jobs
-- not created (id taken, unique key held) are skipped: seq only orders.
local q = {pending = KEYS[1], scheduled = KEYS[2], seq = KEYS[3], marker = nil,
           adds = {}, nadds = 0, next_seq = redis.call('INCRBY', KEYS[3], n) - n + 1}
local pending_created = false
local first_due = nil  -- the earliest due time of the delayed jobs created
local now = now_ms()
local out, created = {}, 0
local i = 3

local function unique_holder(lock, id)
  local holder = redis.call('GET', lock)
  if not holder or holder == id then return nil end
  local state = redis.pcall('HGET', KEYS[7] .. holder, 'state')
  if state == 'pending' or state == 'scheduled' or state == 'processing' then return holder end
  return nil
end

local priority, delay_ms, ttl_ms, ukey, uwindow, base, nbase
for j = 1, n do
  local id = ARGV[i]
  if ARGV[i + 1] == '+' then
    priority = ARGV[i + 2]
    delay_ms, ttl_ms = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    ukey, uwindow = ARGV[i + 5], tonumber(ARGV[i + 6])
    nbase = tonumber(ARGV[i + 7]) * 2
    base = {}
    for f = 1, nbase do base[f] = ARGV[i + 7 + f] end
    i = i + 8 + nbase
  else
    i = i + 2
  end
  local args = ARGV[i]
  i = i + 1
  local job = KEYS[7] .. id
  local holder = nil
  if ukey ~= '' then holder = unique_holder(KEYS[9] .. ukey, id) end
  if redis.call('EXISTS', job) == 1 then
    out[j] = 0
  elseif holder then
    out[j] = holder
  else
    local fields = {}
    for f = 1, nbase do fields[f] = base[f] end
    if args ~= '' then fields[nbase + 1] = 'args'; fields[nbase + 2] = args end
    if create_job(q, job, id, priority, delay_ms, ttl_ms, fields, now) == 'pending' then
      pending_created = true
    elseif delay_ms > 0 and (not first_due or now + delay_ms < first_due) then
      first_due = now + delay_ms
    end
    if ukey ~= '' then redis.call('SET', KEYS[9] .. ukey, id, 'PX', uwindow) end
    created = created + 1
    out[j] = 1
  end
end
if q.nadds > 0 then chunked('ZADD', KEYS[1], q.adds) end
if created > 0 then redis.call('HINCRBY', KEYS[4], 'enqueued', created) end
if pending_created then
  redis.call('ZADD', KEYS[6], 0, 'm')
elseif first_due then
  wake_if_first_due(KEYS[2], KEYS[6], first_due)
end
return out
