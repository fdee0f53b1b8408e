-- Append events (log lines, progress, info) to a job's stream and the global stream,
-- sharing one id. KEYS: 1 global events, 2 job events, 3 job hash
-- ARGV: 1 job id, 2 global maxlen, 3 job maxlen, then pairs (type, data json)
if redis.call('EXISTS', KEYS[3]) == 0 then return {} end
local ids = {}
for i = 4, #ARGV, 2 do
  local eid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job', ARGV[1],
    'type', ARGV[i], 'data', ARGV[i + 1])
  materialize(KEYS[3], KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], eid, 'job', ARGV[1], 'type', ARGV[i],
    'data', ARGV[i + 1])
  ids[#ids + 1] = eid
end
return ids
