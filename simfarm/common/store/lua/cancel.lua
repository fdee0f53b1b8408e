-- Cancel a job: pending/held/scheduled jobs become cancelled at once; running jobs, and
-- scheduled ones with a cluster job (queued there, or between two workers following it),
-- get a cancel request their worker acts on (relayed to the cluster).
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 now, 3 global maxlen, 4 job maxlen, 5 reason
local names = {'state', 'native_id', 'cancel_requested', 'rank', 'gate', 'ev0'}
for _, name in ipairs(ENDING_FIELDS) do table.insert(names, name) end
local job = read_job(KEYS[1], names)
local state = job.state
if not state then return {'missing', ''} end
local id = ARGV[1]
if state == 'running' or (state == 'scheduled' and job.native_id) then
  if job.cancel_requested == '1' then return {'requested', state} end
  redis.call('HSET', KEYS[1], 'cancel_requested', '1', 'updated_at', ARGV[2])
  local payload = cjson.encode({message = 'cancel requested', reason = ARGV[5]})
  emit(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], id, 'info', payload, job.ev0)
  return {'requested', state}
end
if state ~= 'pending' and state ~= 'scheduled' and state ~= 'held' then
  return {'final', state}
end
local set = {'state', 'cancelled', 'updated_at', ARGV[2], 'finished_at', ARGV[2],
  'reason', ARGV[5], 'cancel_requested', '1'}
if state == 'scheduled' then
  table.insert(set, 'usage')
  table.insert(set, record_usage(job, state, 'cancelled', tonumber(ARGV[2])))
end
redis.call('ZREM', K.state(state), id)
redis.call('ZADD', K.state('cancelled'), job.rank, id)
if job.node then redis.call('SREM', K.node_jobs(job.node), id) end
local del = {}
if job.gate then table.insert(del, 'gate') end
count_waiting(job, state, 'cancelled')
if return_licenses(job) then table.insert(del, 'licenses_held') end
redis.call('ZADD', K.finished, ARGV[2], id)
notify_ended(job, id)
if job.watched == '1' then redis.call('SADD', K.gate_checks, id) end
local payload = cjson.encode({from = state, to = 'cancelled', reason = ARGV[5]})
emit(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], id, 'state', payload, job.ev0, del)
redis.call('HSET', KEYS[1], unpack(set))
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
return {'cancelled', state}
