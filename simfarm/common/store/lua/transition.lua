-- Move a job from one state to another, atomically, or change nothing.
-- KEYS: 1 job hash, 2 global events, 3 job events
-- ARGV: 1 job id, 2 key prefix, 3 target state, 4 allowed source states (json list),
--       5 expected attempt ('' = any), 6 expected node ('' = any), 7 fields to set (json map),
--       8 now, 9 global maxlen, 10 job maxlen, 11 '1' to start a new attempt,
--       12 event data json (the script adds from/to), 13 expected fencing token ('' = none),
--       14 fencing token key
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if ARGV[13] ~= '' then
  local fence = redis.call('GET', ARGV[14])
  if fence ~= ARGV[13] then return {'fenced', state} end
end
local allowed = cjson.decode(ARGV[4])
local ok = false
for _, s in ipairs(allowed) do if s == state then ok = true end end
if not ok then return {'illegal', state} end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[5] then
  return {'stale', state}
end
local node = redis.call('HGET', KEYS[1], 'node') or ''
if ARGV[6] ~= '' and node ~= ARGV[6] then return {'stale', state} end
local prefix = ARGV[2]
local target = ARGV[3]
local id = ARGV[1]
local rank = redis.call('HGET', KEYS[1], 'rank')
redis.call('ZREM', prefix .. 'state:' .. state, id)
redis.call('ZADD', prefix .. 'state:' .. target, rank, id)
if ARGV[11] == '1' then redis.call('HINCRBY', KEYS[1], 'attempt', 1) end
local fields = cjson.decode(ARGV[7])
for k, v in pairs(fields) do
  if v == cjson.null or v == '' then redis.call('HDEL', KEYS[1], k)
  else redis.call('HSET', KEYS[1], k, tostring(v)) end
end
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', ARGV[8])
local new_node = redis.call('HGET', KEYS[1], 'node') or ''
if node ~= '' and (node ~= new_node or target == 'pending' or target == 'completed'
    or target == 'failed' or target == 'cancelled') then
  redis.call('SREM', prefix .. 'node:' .. node .. ':jobs', id)
end
if new_node ~= '' and (target == 'scheduled' or target == 'running') then
  redis.call('SADD', prefix .. 'node:' .. new_node .. ':jobs', id)
end
if target == 'completed' or target == 'failed' or target == 'cancelled' then
  redis.call('ZADD', prefix .. 'finished', ARGV[8], id)
  redis.call('HDEL', KEYS[1], 'hold')
  notify_ended(KEYS[1], prefix, id)
  if redis.call('HGET', KEYS[1], 'watched') == '1' then
    redis.call('SADD', prefix .. 'holds:check', id)
  end
end
local data = cjson.decode(ARGV[12])
data['from'] = state
data['to'] = target
data['attempt'] = tonumber(redis.call('HGET', KEYS[1], 'attempt'))
if new_node ~= '' then data['node'] = new_node end
local payload = cjson.encode(data)
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'job', id, 'type', 'state',
  'data', payload)
materialize(KEYS[1], KEYS[3], id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], eid, 'job', id, 'type', 'state',
  'data', payload)
return {'ok', state, eid}
