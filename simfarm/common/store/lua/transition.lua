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
-- What the script and its helpers need of the job, read once in one HMGET: the fields
-- that decide the move, those the caller deletes (deleted only if present), and when the
-- move can end an attempt those of its accounting (lib.lua ENDING_FIELDS).
local target = ARGV[2]
local fields = cjson.decode(ARGV[6])
local names = {'state', 'attempt', 'node', 'rank', 'gate', 'watched', 'ev0', 'owner',
               'account', 'licenses_held'}
if target ~= 'scheduled' and target ~= 'running' then
  for _, name in ipairs(ENDING_FIELDS) do table.insert(names, name) end
end
for k, v in pairs(fields) do
  if v == cjson.null or v == '' then table.insert(names, k) end
end
local job = read_job(KEYS[1], names)
local state = job.state
if not state then return {'missing', ''} end
if ARGV[12] ~= '' then
  local fence = redis.call('GET', K.dispatch_lock)
  if fence ~= ARGV[12] then return {'fenced', state} end
end
local allowed = cjson.decode(ARGV[3])
local ok = false
for _, s in ipairs(allowed) do if s == state then ok = true end end
if not ok then return {'illegal', state} end
-- a job stored without the field has made no attempt yet
if ARGV[4] ~= '' and (job.attempt or '0') ~= ARGV[4] then
  return {'stale', state}
end
local node = job.node or ''
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
local id = ARGV[1]
local usage = nil
if (state == 'scheduled' or state == 'running') and target ~= 'scheduled'
    and target ~= 'running' then
  -- the attempt ends: account for it (lib.lua) before anything of it is changed; the
  -- reaper's verdict carries 'losses', a run stopped at its time limit 'timed_out'
  local ended = target
  if fields['losses'] ~= nil and target ~= 'cancelled' then ended = 'lost'
  elseif target == 'pending' then ended = 'requeued'
  elseif fields['timed_out'] ~= nil and target == 'failed' then ended = 'timeout' end
  usage = record_usage(job, state, ended, tonumber(ARGV[7]))
end
-- The job's fields after this move: one HSET and at most one HDEL.
local set = {'state', target, 'updated_at', ARGV[7]}
if usage then table.insert(set, 'usage'); table.insert(set, usage) end
local del = {}
local after = {}  -- field -> value afterwards (false: deleted), for the fields it changes
local attempt = tonumber(job.attempt or '0')
if ARGV[10] == '1' then
  attempt = attempt + 1
  table.insert(set, 'attempt'); table.insert(set, tostring(attempt))
end
for k, v in pairs(fields) do
  if v == cjson.null or v == '' then
    if job[k] then table.insert(del, k) end
    after[k] = false
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
if final and job.gate then table.insert(del, 'gate') end
if draw and (target == 'scheduled' or target == 'running') then
  table.insert(set, 'licenses_held'); table.insert(set, ARGV[13])
end
if target ~= 'scheduled' and target ~= 'running' then
  if return_licenses(job) and after['licenses_held'] == nil then
    table.insert(del, 'licenses_held')
  end
elseif draw then
  for name, n in pairs(draw) do redis.call('HINCRBY', K.licenses_held, name, n) end
end
redis.call('ZREM', K.state(state), id)
local score = job.rank
if target == 'pending' and now_value('gate', job.gate) then
  score = string.format('%.0f', tonumber(job.rank) + 100000000000000)  -- gated (gate.lua)
end
redis.call('ZADD', K.state(target), score, id)
count_waiting(job, state, target)
local new_node = now_value('node', job.node) or ''
if node ~= '' and (node ~= new_node or target == 'pending' or final) then
  redis.call('SREM', K.node_jobs(node), id)
end
-- (a scheduled job moving to running on the same node is in the node's set already)
if new_node ~= '' and (target == 'scheduled' or target == 'running')
    and not (state == 'scheduled' and new_node == node) then
  redis.call('SADD', K.node_jobs(new_node), id)
end
if final then
  redis.call('ZADD', K.finished, ARGV[7], id)
  notify_ended(job, id)
  if now_value('watched', job.watched) == '1' then
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
                 job.ev0, del)
redis.call('HSET', KEYS[1], unpack(set))
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if ARGV[16] and ARGV[16] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[16]) end
if ARGV[15] == '1' then nudge(K.wakeup) end
if ARGV[14] == '1' then return {'ok', state, eid, redis.call('HGETALL', KEYS[1])} end
return {'ok', state, eid}
