-- promote.lua: scheduled -> pending for jobs whose due time (Redis TIME) has come.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] seq  KEYS[4] marker  KEYS[5] job prefix
-- ARGV[1] max jobs per call
-- Returns {promoted count, next due ms or -1 when nothing else is scheduled}
local moved = promote_due(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], now_ms(), tonumber(ARGV[1]))
return {moved, next_due(KEYS[1])}
