-- Extend the lease of a job's current attempt: a running one, or a scheduled one that a
-- scheduler worker claimed (see claim.lua). KEYS: 1 job hash
-- ARGV: 1 attempt, 2 new lease end (seconds since the epoch)
local state = redis.call('HGET', KEYS[1], 'state')
local claimed = redis.call('HGET', KEYS[1], 'claimed')
if (state == 'running' or (state == 'scheduled' and claimed == ARGV[1]))
   and redis.call('HGET', KEYS[1], 'attempt') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
  return 1
end
return 0
