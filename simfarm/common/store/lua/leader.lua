-- Keep or take the dispatcher leader lock. The holder of token ARGV[1] extends it; else,
-- when the lock is free, a new token (one more than any before) takes it.
-- KEYS: 1 leader lock, 2 fencing token counter
-- ARGV: 1 the caller's token ('' = none), 2 lock TTL in ms
-- Returns the caller's token while it leads, else 0.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
