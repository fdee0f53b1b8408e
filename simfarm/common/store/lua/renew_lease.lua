-- Extend the lease of a job's current attempt: a running one, or a scheduled one that a
-- scheduler worker claimed (see claim.lua). KEYS: 1 job hash
-- ARGV: 1 attempt, 2 new lease end (seconds since the epoch)
local cur = redis.call('HMGET', KEYS[1], 'state', 'claimed', 'attempt')
if (cur[1] == 'running' or (cur[1] == 'scheduled' and cur[2] == ARGV[1]))
   and cur[3] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
  return 1
end
return 0
