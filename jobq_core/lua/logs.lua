-- logs.lua: append captured output of a running job to its log (no state change), only if
-- the caller still holds the job's lease: a worker that lost it must not write into the
-- log of the attempt running elsewhere, nor leave a log behind a purged job. The log has
-- no TTL while the job runs; the script that ends the job gives it the job's.
-- KEYS[1] job hash  KEYS[2] job log (string of lines, joblog.py)
-- ARGV[1] lease token  ARGV[2] text to append (whole lines)
-- Returns 1; -1 job missing; -2 lease not held
local refused = lease_check(KEYS[1], ARGV[1])
if refused ~= 0 then return refused end
redis.call('APPEND', KEYS[2], ARGV[2])
return 1
