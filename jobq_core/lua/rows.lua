-- rows.lua: read-only list rows in one call: each job's small fields and short previews of its
-- args and error, for a page of a state set or for given ids (job lists, filters, bulk steps).
-- KEYS[1] state set  KEYS[2] job prefix
-- ARGV[1] '1': whole errors (to filter on)  '0': previews of their end
-- ARGV[2] mode: 'rank' | 'ids'
--   rank: ARGV[3] offset (rank)  ARGV[4] rows (at most 1000)  ARGV[5] '1' newest first
--   ids:  ARGV[3..] job ids (the caller sends at most a page)
-- Returns {total, then ROW_WIDTH values per row}: total = ZCARD of KEYS[1] ('rank'; 0 for
--   'ids'); a row is id, score ('' for 'ids'), the fields named in FIELDS (nil when absent),
--   args text, args bytes, error text, error bytes. A text is '' when its field is bigger
--   than a row reads (args 4 KiB, errors 64 KiB: workers store at most 20,000 characters
--   of traceback); else the args' head and the error's tail, at most PREVIEW bytes (unless
--   whole errors were asked for), cut on a UTF-8 character boundary. A job whose hash is
--   gone (or not a hash) has nil fields and texts. Writes nothing.
local FIELDS = {'task', 'state', 'enqueued_ms', 'started_ms', 'finished_ms', 'reason',
                'retries', 'worker', 'priority', 'lost', 'runtime_ms'}
-- 200 characters (what a row shows) of up to 4 bytes each, plus one: when a text is cut here
-- it still has more than 200 characters, so the caller can tell it was cut.
local PREVIEW = 804
local ARGS_MAX = 4096
local whole_error = ARGV[1] == '1'
local ERROR_MAX = 65536

local function is_continuation(s, i)
  local b = string.byte(s, i)
  return b ~= nil and b >= 128 and b < 192
end

-- The first n bytes of s, not splitting a character.
local function head(s, n)
  if #s <= n then return s end
  local cut = n
  while cut > 0 and is_continuation(s, cut + 1) do cut = cut - 1 end
  return string.sub(s, 1, cut)
end

-- The last n bytes of s, not splitting a character.
local function tail(s, n)
  if #s <= n then return s end
  local from = #s - n + 1
  while from <= #s and is_continuation(s, from) do from = from + 1 end
  return string.sub(s, from)
end

local out = {0}
local function row(id, score)
  local job = KEYS[2] .. id
  out[#out + 1] = id
  out[#out + 1] = score
  if redis.call('TYPE', job)['ok'] ~= 'hash' then
    for _ = 1, #FIELDS + 4 do out[#out + 1] = false end
    return
  end
  local values = redis.call('HMGET', job, unpack(FIELDS))
  for i = 1, #FIELDS do out[#out + 1] = values[i] end
  local args_len = redis.call('HSTRLEN', job, 'args')
  local args = ''
  if args_len > 0 and args_len <= ARGS_MAX then
    args = head(redis.call('HGET', job, 'args'), PREVIEW)
  end
  local error_len = redis.call('HSTRLEN', job, 'error')
  local err = ''
  if error_len > 0 and error_len <= ERROR_MAX then
    err = redis.call('HGET', job, 'error')
    if not whole_error then err = tail(err, PREVIEW) end
  end
  out[#out + 1] = args
  out[#out + 1] = args_len
  out[#out + 1] = err
  out[#out + 1] = error_len
end

if ARGV[2] == 'rank' then
  local first, count = tonumber(ARGV[3]), math.min(tonumber(ARGV[4]), 1000)
  out[1] = redis.call('ZCARD', KEYS[1])
  -- An empty or negative window reads nothing (ZRANGE 0 -1 would be the whole set).
  if count >= 1 and first >= 0 then
    local entries
    if ARGV[5] == '1' then
      entries = redis.call('ZREVRANGE', KEYS[1], first, first + count - 1, 'WITHSCORES')
    else
      entries = redis.call('ZRANGE', KEYS[1], first, first + count - 1, 'WITHSCORES')
    end
    for i = 1, #entries, 2 do row(entries[i], entries[i + 1]) end
  end
else
  for i = 3, #ARGV do row(ARGV[i], '') end
end
return out
