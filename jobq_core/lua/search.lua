-- search.lua: read-only filter over a slice of one state set (the dashboard's task/text filter).
-- KEYS[1] state set  KEYS[2] job prefix
-- ARGV[1] offset (rank)  ARGV[2] entries to examine (<= 1000)  ARGV[3] '1' newest first
-- ARGV[4] task needle (lowercase, '' = any)  ARGV[5] text needle (lowercase, '' = any)
-- ARGV[6] max matches
-- Returns {examined, id1, score1, id2, score2, ...}: examined = entries looked at, so
--   offset + examined is where the next call resumes (it stops right after the last match
--   when ARGV[6] is reached). Text is looked for in the reason, the error (when at most
--   64 KiB) and the first 200 bytes of the args (when at most 4 KiB), as the list rows show
--   them; matching is plain (no patterns) and ASCII case-insensitive. Writes nothing.
local first, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local entries
if ARGV[3] == '1' then
  entries = redis.call('ZREVRANGE', KEYS[1], first, first + count - 1, 'WITHSCORES')
else
  entries = redis.call('ZRANGE', KEYS[1], first, first + count - 1, 'WITHSCORES')
end
local task, text, want = ARGV[4], ARGV[5], tonumber(ARGV[6])
local out = {0}
local found = 0
for i = 1, #entries, 2 do
  local id = entries[i]
  local job = KEYS[2] .. id
  local ok = redis.call('TYPE', job)['ok'] == 'hash'
  if ok and task ~= '' then
    local t = redis.call('HGET', job, 'task') or ''
    ok = string.find(string.lower(t), task, 1, true) ~= nil
  end
  if ok and text ~= '' then
    local hit = string.find(string.lower(redis.call('HGET', job, 'reason') or ''), text, 1, true)
    if not hit and redis.call('HSTRLEN', job, 'error') <= 65536 then
      hit = string.find(string.lower(redis.call('HGET', job, 'error') or ''), text, 1, true)
    end
    if not hit and redis.call('HSTRLEN', job, 'args') <= 4096 then
      local args = string.sub(redis.call('HGET', job, 'args') or '', 1, 200)
      hit = string.find(string.lower(args), text, 1, true)
    end
    ok = hit ~= nil
  end
  out[1] = (i + 1) / 2
  if ok then
    out[#out + 1] = id
    out[#out + 1] = entries[i + 1]
    found = found + 1
    if found >= want then break end
  end
end
return out
