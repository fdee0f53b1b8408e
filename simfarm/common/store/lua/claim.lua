-- Take a scheduled attempt for one task without moving it to running: scheduler workers
-- keep the job scheduled while it waits in the cluster queue, so the running transition
-- cannot be the claim. KEYS: 1 job hash
-- ARGV: 1 attempt, 2 node, 3 lease end (seconds since the epoch)
if redis.call('HGET', KEYS[1], 'state') ~= 'scheduled' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'node') or '') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'claimed') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'claimed', ARGV[1], 'lease_until', ARGV[3])
return 1
