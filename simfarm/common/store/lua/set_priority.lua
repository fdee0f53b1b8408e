-- Change the priority of a pending (or held) job and re-rank it.
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 new priority, 3 now, 4 global maxlen, 5 job maxlen
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state ~= 'pending' and state ~= 'held' then return {'illegal', state} end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local old = redis.call('HGET', KEYS[1], 'priority')
local priority = tonumber(ARGV[2])
local rank = (10 - priority) * 1000000000000 + seq
redis.call('HSET', KEYS[1], 'priority', priority, 'rank', rank, 'updated_at', ARGV[3])
local score = rank
if state == 'pending' and redis.call('HEXISTS', KEYS[1], 'gate') == 1 then
  score = string.format('%.0f', rank + 100000000000000)  -- gated jobs stay behind startable ones
end
redis.call('ZADD', K.state(state), score, ARGV[1])
local payload = cjson.encode({message = 'priority changed', old = tonumber(old), new = priority})
emit(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[1], 'info', payload)
return {'ok', state}
