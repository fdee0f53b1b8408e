-- Give up the dispatcher leader lock if token ARGV[1] still holds it.
-- KEYS: 1 leader lock
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
