-- requeue.lua: failed | dead | cancelled | completed -> pending, for given ids or a batch.
-- KEYS[1] source state set  KEYS[2] pending  KEYS[3] seq  KEYS[4] marker  KEYS[5] stats
-- KEYS[6] job prefix  KEYS[7] error group prefix (a requeued job leaves its error group)
-- ARGV[1] source state name  ARGV[2] mode: 'ids' | 'upto' | 'seen'
--   ids:  ARGV[3..] job ids
--   upto: ARGV[3] score cutoff (snapshot taken by the caller)  ARGV[4] batch size
--   seen: ARGV[3] job id  ARGV[4] its requeue count when the caller read it: the job moves
--         only if no one requeued it since (a repeated request does not run it again)
-- Returns {moved, left}: left = entries of the set with score <= cutoff still there ('upto'),
--   0 for 'ids' and 'seen'. Ids not in the set, or whose hash is gone, are skipped (and dropped
--   from it); in 'seen' mode a job requeued since is left where it is.
local ids
if ARGV[2] == 'seen' then
  ids = {ARGV[3]}
  if (redis.call('HGET', KEYS[6] .. ARGV[3], 'requeues') or '0') ~= ARGV[4] then ids = {} end
else
  ids = selected_ids(KEYS[1])
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local job = KEYS[6] .. id
    if redis.call('TYPE', job)['ok'] == 'hash' and redis.call('HGET', job, 'state') == ARGV[1] then
      redis.call('PERSIST', job)
      redis.call('PERSIST', job .. ':attempts')
      redis.call('DEL', job .. ':logs')  -- a fresh run, a fresh log of captured output
      -- expires_ms goes too: an operator's requeue means "run it now", so a job that went dead
      -- as expired must not be buried again by its old TTL.
      redis.call('HDEL', job, 'reason', 'result', 'finished_ms', 'lease', 'lost', 'retries',
                 'runtime_ms', 'expires_ms')
      redis.call('HSET', job, 'state', 'pending', 'requeued_ms', now_ms())
      redis.call('HINCRBY', job, 'requeues', 1)
      local group = redis.call('HGET', job, 'error_group')
      if group then
        redis.call('ZREM', KEYS[7] .. group .. ':ids', id)
        redis.call('HDEL', job, 'error_group')
      end
      push_pending(KEYS[2], KEYS[3], KEYS[4], id, redis.call('HGET', job, 'priority'))
      moved = moved + 1
    end
  end
end
if moved > 0 then redis.call('HINCRBY', KEYS[5], 'requeued', moved) end
local left = 0
if ARGV[2] == 'upto' then left = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[3]) end
return {moved, left}
