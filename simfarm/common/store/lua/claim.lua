-- Take a scheduled attempt for one task without moving it to running: scheduler workers
-- keep the job scheduled while it waits in the cluster queue, so the running transition
-- cannot be the claim. KEYS: 1 job hash
-- ARGV: 1 attempt, 2 node, 3 lease end (seconds since the epoch)
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node', 'claimed')
if cur[1] ~= 'scheduled' or cur[2] ~= ARGV[1] or (cur[3] or '') ~= ARGV[2]
   or cur[4] == ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'claimed', ARGV[1], 'lease_until', ARGV[3])
return 1
