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
-- What the script needs of the job, read once (the fields it may change are worked out
-- from ARGV[6] below, not read again).
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node', 'rank', 'gate', 'watched',
                      'ev0')
local state = h[1]
if not state then return {'missing', ''} end
if ARGV[12] ~= '' then
  local fence = redis.call('GET', K.dispatch_lock)
  if fence ~= ARGV[12] then return {'fenced', state} end
end
local allowed = cjson.decode(ARGV[3])
local ok = false
for _, s in ipairs(allowed) do if s == state then ok = true end end
if not ok then return {'illegal', state} end
if ARGV[4] ~= '' and h[2] ~= ARGV[4] then
  return {'stale', state}
end
local node = h[3] or ''
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
-- The job's fields after this move: one HSET and at most one HDEL.
local set = {'state', target, 'updated_at', ARGV[7]}
local del = {}
local after = {}  -- field -> value afterwards (false: deleted), for the fields it changes
local attempt = tonumber(h[2] or '0')
if ARGV[10] == '1' then
  attempt = attempt + 1
  table.insert(set, 'attempt'); table.insert(set, tostring(attempt))
end
for k, v in pairs(fields) do
  if v == cjson.null or v == '' then table.insert(del, k); after[k] = false
  else table.insert(set, k); table.insert(set, tostring(v)); after[k] = tostring(v) end
end
local function now_value(name, before)
  if after[name] == nil then return before end
  return after[name]
end
if fields['attempt'] ~= nil then attempt = tonumber(now_value('attempt', false) or '0') end
if target == 'pending' then  -- back in line (released, requeued): its wait starts again
  table.insert(set, 'queued_at'); table.insert(set, ARGV[7])
end
local final = target == 'completed' or target == 'failed' or target == 'cancelled'
if final then table.insert(del, 'gate') end
if draw and (target == 'scheduled' or target == 'running') then
  table.insert(set, 'licenses_held'); table.insert(set, ARGV[13])
end
redis.call('ZREM', K.state(state), id)
redis.call('HSET', KEYS[1], unpack(set))
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
local score = h[4]
if target == 'pending' and now_value('gate', h[5]) then
  score = string.format('%.0f', tonumber(h[4]) + 100000000000000)  -- gated (gate.lua)
end
redis.call('ZADD', K.state(target), score, id)
count_waiting(KEYS[1], state, target)
if target ~= 'scheduled' and target ~= 'running' then
  return_licenses(KEYS[1])
elseif draw then
  for name, n in pairs(draw) do redis.call('HINCRBY', K.licenses_held, name, n) end
end
local new_node = now_value('node', h[3]) or ''
if node ~= '' and (node ~= new_node or target == 'pending' or final) then
  redis.call('SREM', K.node_jobs(node), id)
end
if new_node ~= '' and (target == 'scheduled' or target == 'running') then
  redis.call('SADD', K.node_jobs(new_node), id)
end
if final then
  redis.call('ZADD', K.finished, ARGV[7], id)
  notify_ended(KEYS[1], id)
  if now_value('watched', h[6]) == '1' then
    redis.call('SADD', K.gate_checks, id)
  end
end
local data = cjson.decode(ARGV[11])
data['from'] = state
data['to'] = target
data['attempt'] = attempt
if new_node ~= '' then data['node'] = new_node end
local payload = cjson.encode(data)
local eid = emit(KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[9], id, 'state', payload,
                 h[7] or false)
if ARGV[16] and ARGV[16] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[16]) end
if ARGV[15] == '1' then
  redis.call('LPUSH', K.wakeup, '1')
  redis.call('LTRIM', K.wakeup, 0, 0)
end
if ARGV[14] == '1' then return {'ok', state, eid, redis.call('HGETALL', KEYS[1])} end
return {'ok', state, eid}
