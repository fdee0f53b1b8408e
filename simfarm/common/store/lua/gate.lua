-- Close or open the gate of a pending job (dependencies, a sweep's throttle). A gated job
-- stays in state:pending (it is pending for every reader) but ranked after every
-- startable job (score + 1e14), so the dispatcher, which reads only scores below 1e14,
-- never sees it. Not a user's hold: that is the state 'held' (transition.lua).
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 gate code ('' = open), 3 reason, 4 now, 5 global maxlen, 6 job maxlen
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state ~= 'pending' then return {'illegal', state} end
local old = redis.call('HGET', KEYS[1], 'gate') or ''
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank'))
local message
if ARGV[2] == '' then
  if old == '' then return {'ok', state} end
  redis.call('HDEL', KEYS[1], 'gate', 'reason')
  redis.call('ZADD', K.state('pending'), rank, ARGV[1])
  message = 'ungated'
else
  local oldreason = redis.call('HGET', KEYS[1], 'reason') or ''
  if old == ARGV[2] and oldreason == ARGV[3] then return {'ok', state} end
  redis.call('HSET', KEYS[1], 'gate', ARGV[2], 'reason', ARGV[3])
  redis.call('ZADD', K.state('pending'), string.format('%.0f', rank + 100000000000000),
    ARGV[1])
  if old == ARGV[2] then return {'ok', state} end
  message = 'gated'
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
local payload = cjson.encode({message = message, gate = ARGV[2], reason = ARGV[3]})
emit(KEYS[1], KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[1], 'info', payload)
return {'ok', state}
