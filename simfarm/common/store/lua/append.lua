-- Append events (log lines, progress, info) to a job's stream and the global stream,
-- sharing one id. KEYS: 1 global events, 2 job events, 3 job hash
-- ARGV: 1 job id, 2 global maxlen, 3 job maxlen, then pairs (type, data json)
local cur = redis.call('HMGET', KEYS[3], 'state', 'ev0')
if not cur[1] then return {} end
local ids = {}
for i = 4, #ARGV, 2 do
  local eid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job', ARGV[1],
    'type', ARGV[i], 'data', ARGV[i + 1])
  if i == 4 and cur[2] then  -- the job's first event goes to its stream first (lib.lua)
    write_ev0(KEYS[2], ARGV[1], cur[2])
    redis.call('HDEL', KEYS[3], 'ev0')
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], eid, 'job', ARGV[1], 'type', ARGV[i],
    'data', ARGV[i + 1])
  ids[#ids + 1] = eid
end
return ids
