-- Move a job from one state to another, atomically, or change nothing.
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 target state, 3 allowed source states (json list), 4 expected attempt
--       ('' = any), 5 expected node ('' = any), 6 fields to set (json map), 7 now,
--       8 global maxlen, 9 job maxlen, 10 '1' to start a new attempt, 11 event data json
--       (the script adds from/to), 12 the dispatcher leader's fencing token ('' = none),
--       13 licences of the farm's pools to draw (json map, '' = none): all of them or,
--       when one pool has too few free, nothing at all ({'licenses', state, name, free})
--       14 '1' to answer with the job's hash as it is afterwards, 15 '1' to nudge the
--       dispatcher, 16 a task message to push on KEYS[4], a Celery queue ('' = none)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if ARGV[12] ~= '' then
  local fence = redis.call('GET', K.dispatch_lock)
  if fence ~= ARGV[12] then return {'fenced', state} end
end
local allowed = cjson.decode(ARGV[3])
local ok = false
for _, s in ipairs(allowed) do if s == state then ok = true end end
if not ok then return {'illegal', state} end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[4] then
  return {'stale', state}
end
local node = redis.call('HGET', KEYS[1], 'node') or ''
if ARGV[5] ~= '' and node ~= ARGV[5] then return {'stale', state} end
local draw = nil
if ARGV[13] ~= '' then
  draw = cjson.decode(ARGV[13])
  for name, n in pairs(draw) do
    local free = tonumber(redis.call('HGET', K.licenses_limit, name) or '0')
      - tonumber(redis.call('HGET', K.licenses_held, name) or '0')
    if n > free then return {'licenses', state, name, tostring(free)} end
  end
end
local target = ARGV[2]
local id = ARGV[1]
local fields = cjson.decode(ARGV[6])
if (state == 'scheduled' or state == 'running') and target ~= 'scheduled'
    and target ~= 'running' then
  -- the attempt ends: account for it (lib.lua) before anything of it is changed; the
  -- reaper's verdict carries 'losses', a run stopped at its time limit 'timed_out'
  local ended = target
  if fields['losses'] ~= nil and target ~= 'cancelled' then ended = 'lost'
  elseif target == 'pending' then ended = 'requeued'
  elseif fields['timed_out'] ~= nil and target == 'failed' then ended = 'timeout' end
  record_usage(KEYS[1], state, ended, tonumber(ARGV[7]))
end
local rank = redis.call('HGET', KEYS[1], 'rank')
redis.call('ZREM', K.state(state), id)
if ARGV[10] == '1' then redis.call('HINCRBY', KEYS[1], 'attempt', 1) end
for k, v in pairs(fields) do
  if v == cjson.null or v == '' then redis.call('HDEL', KEYS[1], k)
  else redis.call('HSET', KEYS[1], k, tostring(v)) end
end
local score = rank
if target == 'pending' and redis.call('HEXISTS', KEYS[1], 'gate') == 1 then
  score = string.format('%.0f', tonumber(rank) + 100000000000000)  -- gated (gate.lua)
end
redis.call('ZADD', K.state(target), score, id)
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', ARGV[7])
count_waiting(KEYS[1], state, target)
if target == 'pending' then  -- back in line (released, requeued): its wait starts again
  redis.call('HSET', KEYS[1], 'queued_at', ARGV[7])
end
if target ~= 'scheduled' and target ~= 'running' then
  return_licenses(KEYS[1])
elseif draw then
  for name, n in pairs(draw) do redis.call('HINCRBY', K.licenses_held, name, n) end
  redis.call('HSET', KEYS[1], 'licenses_held', ARGV[13])
end
local new_node = redis.call('HGET', KEYS[1], 'node') or ''
if node ~= '' and (node ~= new_node or target == 'pending' or target == 'completed'
    or target == 'failed' or target == 'cancelled') then
  redis.call('SREM', K.node_jobs(node), id)
end
if new_node ~= '' and (target == 'scheduled' or target == 'running') then
  redis.call('SADD', K.node_jobs(new_node), id)
end
if target == 'completed' or target == 'failed' or target == 'cancelled' then
  redis.call('ZADD', K.finished, ARGV[7], id)
  redis.call('HDEL', KEYS[1], 'gate')
  notify_ended(KEYS[1], id)
  if redis.call('HGET', KEYS[1], 'watched') == '1' then
    redis.call('SADD', K.gate_checks, id)
  end
end
local data = cjson.decode(ARGV[11])
data['from'] = state
data['to'] = target
data['attempt'] = tonumber(redis.call('HGET', KEYS[1], 'attempt'))
if new_node ~= '' then data['node'] = new_node end
local payload = cjson.encode(data)
local eid = emit(KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[9], id, 'state', payload)
if ARGV[16] and ARGV[16] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[16]) end
if ARGV[15] == '1' then
  redis.call('LPUSH', K.wakeup, '1')
  redis.call('LTRIM', K.wakeup, 0, 0)
end
if ARGV[14] == '1' then return {'ok', state, eid, redis.call('HGETALL', KEYS[1])} end
return {'ok', state, eid}
