-- enqueue.lua: new jobs -> pending (or scheduled when delayed). One call per batch.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] stats  KEYS[5] meta
-- KEYS[6] marker  KEYS[7] job prefix  KEYS[8] history
-- ARGV[1] number of jobs  ARGV[2] history size, then per job:
--   id, priority, delay_ms, ttl_ms, nfields, field1, value1, ... (task, args, kwargs, options)
-- Returns a list with one entry per job: 1 created, 0 a job with this id already exists;
--   or -3 (whole batch refused, nothing written) when meta.max_length would be exceeded.
local n = tonumber(ARGV[1])
local max_length = tonumber(redis.call('HGET', KEYS[5], 'max_length') or '0')
if max_length > 0 and redis.call('ZCARD', KEYS[1]) + n > max_length then
  return -3
end
local now = now_ms()
local out = {}
local i = 3
for j = 1, n do
  local id, priority = ARGV[i], ARGV[i + 1]
  local delay_ms, ttl_ms = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local nfields = tonumber(ARGV[i + 4])
  local job = KEYS[7] .. id
  if redis.call('EXISTS', job) == 1 then
    out[j] = 0
  else
    local fields = {}
    for f = 0, nfields * 2 - 1 do fields[#fields + 1] = ARGV[i + 5 + f] end
    fields[#fields + 1] = 'enqueued_ms'; fields[#fields + 1] = now
    if ttl_ms > 0 then
      fields[#fields + 1] = 'expires_ms'; fields[#fields + 1] = now + delay_ms + ttl_ms
    end
    if delay_ms > 0 then
      fields[#fields + 1] = 'state'; fields[#fields + 1] = 'scheduled'
      redis.call('HSET', job, unpack(fields))
      redis.call('ZADD', KEYS[2], now + delay_ms, id)
    else
      fields[#fields + 1] = 'state'; fields[#fields + 1] = 'pending'
      redis.call('HSET', job, unpack(fields))
      push_pending(KEYS[1], KEYS[3], KEYS[6], id, priority)
    end
    out[j] = 1
  end
  i = i + 5 + nfields * 2
end
redis.call('HINCRBY', KEYS[4], 'enqueued', n)
return out
