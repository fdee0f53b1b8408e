-- Set why each job is still pending, for the jobs that still are.
-- KEYS: the job hashes; ARGV: the reasons, in the same order
local n = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'pending' then
    redis.call('HSET', KEYS[i], 'reason', ARGV[i])
    n = n + 1
  end
end
return n
