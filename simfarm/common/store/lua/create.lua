-- Create a pending job atomically.
-- KEYS: 1 seq, 2 job hash, 3 all jobs zset, 4 pending zset, 5 global events, 6 job events,
--       7 idempotency key (KEYS[1] when none), 8 owner zset (KEYS[1] when none),
--       9 dispatcher wakeup list (nudged here, saving the caller a round trip)
-- ARGV: 1 job id, 2 spec json, 3 priority, 4 now, 5 owner, 6 global maxlen, 7 job maxlen,
--       8 idempotency ttl seconds, 9 event json, 10 extra hash fields (json map; a 'gate'
--       field creates the job gated: ranked after every startable job, see gate.lua)
if KEYS[7] ~= KEYS[1] then
  local existing = redis.call('GET', KEYS[7])
  if existing then return {'dup', existing} end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists', ARGV[1]} end
local seq = redis.call('INCR', KEYS[1])
local priority = tonumber(ARGV[3])
local rank = (10 - priority) * 1000000000000 + seq
-- The job's hash, written once below (with the extra fields and its first event).
local job = {id = ARGV[1], spec = ARGV[2], state = 'pending', priority = tostring(priority),
  seq = tostring(seq), rank = string.format('%.0f', rank), created_at = ARGV[4],
  updated_at = ARGV[4], attempt = '0', owner = ARGV[5]}
redis.call('ZADD', KEYS[3], seq, ARGV[1])
local score = rank
if ARGV[10] and ARGV[10] ~= '' then
  local extra = cjson.decode(ARGV[10])
  for k, v in pairs(extra) do job[k] = tostring(v) end
  if extra['gate'] then score = string.format('%.0f', rank + 100000000000000) end
end
redis.call('ZADD', KEYS[4], score, ARGV[1])
count_waiting(job, '', 'pending')
if KEYS[8] ~= KEYS[1] then redis.call('ZADD', KEYS[8], seq, ARGV[1]) end
if KEYS[7] ~= KEYS[1] then redis.call('SET', KEYS[7], ARGV[1], 'EX', tonumber(ARGV[8])) end
local eid = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',
  'job', ARGV[1], 'type', 'state', 'data', ARGV[9])
job['ev0'] = eid .. ' ' .. ARGV[9]  -- see lib.lua
local flat = {}
for k, v in pairs(job) do table.insert(flat, k); table.insert(flat, v) end
redis.call('HSET', KEYS[2], unpack(flat))
nudge(KEYS[9])
-- The stored hash comes back with the answer: the caller needs no second read.
return {'ok', ARGV[1], eid, flat}
