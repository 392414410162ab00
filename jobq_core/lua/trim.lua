-- trim.lua: forget ids in the final-state zsets whose retention ended (their hashes expired).
-- KEYS[1] completed  KEYS[2] failed  KEYS[3] dead  KEYS[4] cancelled
-- ARGV: none
-- Returns how many entries were dropped (at most 100 per set per call, so it stays cheap).
-- Run by every worker's heartbeat, so counts and pages stop showing expired jobs even when no
-- new job reaches a state (retain() also trims, but only when a job arrives).
local now = now_ms()
local dropped = 0
for _, set in ipairs(KEYS) do
  local before = redis.call('ZCARD', set)
  trim_expired(set, now)
  dropped = dropped + before - redis.call('ZCARD', set)
end
return dropped
