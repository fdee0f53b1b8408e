-- Cancel a job: pending/held/scheduled jobs become cancelled at once; running jobs, and
-- scheduled ones with a cluster job (queued there, or between two workers following it),
-- get a cancel request their worker acts on (relayed to the cluster).
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 now, 3 global maxlen, 4 job maxlen, 5 reason
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
local id = ARGV[1]
if state == 'running'
    or (state == 'scheduled' and redis.call('HEXISTS', KEYS[1], 'native_id') == 1) then
  if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then return {'requested', state} end
  redis.call('HSET', KEYS[1], 'cancel_requested', '1', 'updated_at', ARGV[2])
  local payload = cjson.encode({message = 'cancel requested', reason = ARGV[5]})
  emit(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], id, 'info', payload)
  return {'requested', state}
end
if state ~= 'pending' and state ~= 'scheduled' and state ~= 'held' then
  return {'final', state}
end
if state == 'scheduled' then record_usage(KEYS[1], state, 'cancelled', tonumber(ARGV[2])) end
local rank = redis.call('HGET', KEYS[1], 'rank')
redis.call('ZREM', K.state(state), id)
redis.call('ZADD', K.state('cancelled'), rank, id)
local node = redis.call('HGET', KEYS[1], 'node')
if node then redis.call('SREM', K.node_jobs(node), id) end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'updated_at', ARGV[2], 'finished_at', ARGV[2],
  'reason', ARGV[5], 'cancel_requested', '1')
redis.call('HDEL', KEYS[1], 'gate')
count_waiting(KEYS[1], state, 'cancelled')
return_licenses(KEYS[1])
redis.call('ZADD', K.finished, ARGV[2], id)
notify_ended(KEYS[1], id)
if redis.call('HGET', KEYS[1], 'watched') == '1' then redis.call('SADD', K.gate_checks, id) end
local payload = cjson.encode({from = state, to = 'cancelled', reason = ARGV[5]})
emit(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], id, 'state', payload)
return {'cancelled', state}
