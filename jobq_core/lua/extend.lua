-- extend.lua: renew the leases a worker holds (processing -> processing, later deadline).
-- KEYS[1] processing  KEYS[2] job prefix
-- ARGV[1] lease ms, then pairs: job id, lease token
-- Returns the ids whose lease this worker no longer holds (reaped, requeued, purged):
--   the worker must stop those jobs and must not report their results.
local lease_ms = tonumber(ARGV[1])
local deadline = now_ms() + lease_ms
local lost = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local held = redis.call('HGET', KEYS[2] .. id, 'lease')
  if held == token and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
