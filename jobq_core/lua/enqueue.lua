-- enqueue.lua: new jobs -> pending, scheduled (delayed) or deferred (waiting on dependencies).
-- One call per batch.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] stats  KEYS[5] meta
-- KEYS[6] marker  KEYS[7] job prefix  KEYS[8] unique lock prefix
-- ARGV[1] number of jobs, then per job one record, either
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
-- This runs once per single enqueue, so it is written for few Lua steps: the stored fields
-- of a full record are built once and reused by the jobs after it (all of a call's jobs
-- share `now`), and one INCRBY, one ZADD of pending jobs and one marker ZADD serve a batch.
local n = tonumber(ARGV[1])
local max_length = redis.call('HGET', KEYS[5], 'max_length')
if max_length and tonumber(max_length) > 0
    and redis.call('ZCARD', KEYS[1]) + n > tonumber(max_length) then
  return -3
end
-- Seqs of jobs not created (id taken, unique key held) are skipped: seq only orders.
local seq = redis.call('INCRBY', KEYS[3], n) - n
local now = now_ms()
local out, adds, nadds, created = {}, {}, 0, 0
local first_due = nil  -- the earliest due time of the delayed jobs created
local i = 2
local band, delay_ms, ukey, uwindow, fields, nfields
for j = 1, n do
  local id = ARGV[i]
  if ARGV[i + 1] == '+' then
    band = (100 - (tonumber(ARGV[i + 2]) or 0)) * PRIORITY_BAND
    delay_ms = tonumber(ARGV[i + 3])
    local ttl_ms = tonumber(ARGV[i + 4])
    ukey, uwindow = ARGV[i + 5], ARGV[i + 6]
    nfields = tonumber(ARGV[i + 7]) * 2
    fields = {}
    for f = 1, nfields do fields[f] = ARGV[i + 7 + f] end
    i = i + 8 + nfields
    add_new_job_fields(fields, delay_ms, ttl_ms, now)
    nfields = #fields
    fields[nfields + 1] = 'args'  -- its value is each job's own, set below
  else
    i = i + 2
  end
  local args = ARGV[i]
  i = i + 1
  seq = seq + 1
  local job = KEYS[7] .. id
  local holder = nil
  if ukey ~= '' then
    holder = redis.call('GET', KEYS[8] .. ukey)
    if holder == id then
      holder = nil
    elseif holder then
      local state = redis.pcall('HGET', KEYS[7] .. holder, 'state')
      if state ~= 'pending' and state ~= 'scheduled' and state ~= 'processing' then
        holder = nil
      end
    end
  end
  if redis.call('EXISTS', job) == 1 then
    out[j] = 0
  elseif holder then
    out[j] = holder
  else
    if args ~= '' then
      fields[nfields + 2] = args
      redis.call('HSET', job, unpack(fields, 1, nfields + 2))
    else
      redis.call('HSET', job, unpack(fields, 1, nfields))
    end
    if delay_ms == 0 then
      adds[nadds + 1] = band + seq
      adds[nadds + 2] = id
      nadds = nadds + 2
    elseif delay_ms > 0 then
      redis.call('ZADD', KEYS[2], now + delay_ms, id)
      if not first_due or now + delay_ms < first_due then first_due = now + delay_ms end
    else
      redis.call('ZADD', KEYS[2], DEFERRED_MS + now, id)
    end
    if ukey ~= '' then redis.call('SET', KEYS[8] .. ukey, id, 'PX', uwindow) end
    created = created + 1
    out[j] = 1
  end
end
if nadds > 0 then
  chunked('ZADD', KEYS[1], adds)
  redis.call('ZADD', KEYS[6], 0, 'm')
elseif first_due then
  wake_if_first_due(KEYS[2], KEYS[6], first_due)
end
if created > 0 then redis.call('HINCRBY', KEYS[4], 'enqueued', created) end
return out
