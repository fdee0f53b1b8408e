-- Move a job from one state to another, atomically, or change nothing.
-- KEYS: 1 job hash, 2 global events, 3 job events, 4 a Celery queue (with ARGV 15)
-- ARGV: 1 job id, 2 target state, 3 allowed source states (json list), 4 expected attempt
--       ('' = any), 5 expected node ('' = any), 6 fields to set (json map), 7 now,
--       8 global maxlen, 9 job maxlen, 10 '1' to start a new attempt, 11 event data json
--       (the script adds from/to), 12 the dispatcher leader's fencing token ('' = none),
--       13 '1' to answer with the job's hash as it is afterwards, 14 '1' to nudge the
--       dispatcher, 15 a task message to push on KEYS[4] ('' = none)
-- Every job passes here three times or more, so it reads the hash once and writes it
-- once (plus one HDEL for the fields it clears).
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node', 'rank', 'ev0',
  'watched', 'notify', 'owner')
local state = cur[1]
if not state then return {'missing', ''} end
if ARGV[12] ~= '' then
  local fence = redis.call('GET', K.dispatch_lock)
  if fence ~= ARGV[12] then return {'fenced', state} end
end
local allowed = cjson.decode(ARGV[3])
local ok = false
for _, s in ipairs(allowed) do if s == state then ok = true end end
if not ok then return {'illegal', state} end
if ARGV[4] ~= '' and cur[2] ~= ARGV[4] then return {'stale', state} end
local node = cur[3] or ''
if ARGV[5] ~= '' and node ~= ARGV[5] then return {'stale', state} end
local target = ARGV[2]
local id = ARGV[1]
local final = target == 'completed' or target == 'failed' or target == 'cancelled'
if target ~= state then
  redis.call('ZREM', K.state(state), id)
  redis.call('ZADD', K.state(target), cur[4], id)
end
local sets = {}
local dels = {}
local new_node = node
for k, v in pairs(cjson.decode(ARGV[6])) do
  if v == cjson.null or v == '' or (final and k == 'hold') then
    dels[#dels + 1] = k
    if k == 'node' then new_node = '' end
  else
    sets[#sets + 1] = k
    sets[#sets + 1] = tostring(v)
    if k == 'node' then new_node = tostring(v) end
  end
end
if final then dels[#dels + 1] = 'hold' end
local attempt = tonumber(cur[2] or '0')
if ARGV[10] == '1' then
  attempt = attempt + 1
  sets[#sets + 1] = 'attempt'
  sets[#sets + 1] = attempt
end
sets[#sets + 1] = 'state'
sets[#sets + 1] = target
sets[#sets + 1] = 'updated_at'
sets[#sets + 1] = ARGV[7]
if cur[5] then dels[#dels + 1] = 'ev0' end  -- written to the job's stream below
if #dels > 0 then redis.call('HDEL', KEYS[1], unpack(dels)) end
redis.call('HSET', KEYS[1], unpack(sets))
local holds_here = target == 'scheduled' or target == 'running'
if node ~= '' and (node ~= new_node or not holds_here) then
  redis.call('SREM', K.node_jobs(node), id)
end
if new_node ~= '' and holds_here then redis.call('SADD', K.node_jobs(new_node), id) end
if final then
  redis.call('ZADD', K.finished, ARGV[7], id)
  notify_wanted(id, cur[7], cur[8])
  if cur[6] == '1' then redis.call('SADD', K.hold_checks, id) end
end
local data = cjson.decode(ARGV[11])
data['from'] = state
data['to'] = target
data['attempt'] = attempt
if new_node ~= '' then data['node'] = new_node end
local payload = cjson.encode(data)
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'job', id, 'type', 'state',
  'data', payload)
if cur[5] then write_ev0(KEYS[3], id, cur[5]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], eid, 'job', id, 'type', 'state',
  'data', payload)
if ARGV[15] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[15]) end
if ARGV[14] == '1' then
  redis.call('LPUSH', K.wakeup, '1')
  redis.call('LTRIM', K.wakeup, 0, 0)
end
if ARGV[13] == '1' then return {'ok', state, eid, redis.call('HGETALL', KEYS[1])} end
return {'ok', state, eid}
