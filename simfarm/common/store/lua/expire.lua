-- Forget a finished job: its hash, events and every index entry. Refuses a job that is
-- not finished. KEYS: 1 job hash, 2 job events
-- ARGV: 1 job id, 2 prefix
local state = redis.call('HGET', KEYS[1], 'state')
local id = ARGV[1]
local prefix = ARGV[2]
if not state then
  redis.call('ZREM', prefix .. 'finished', id)
  return {'missing', ''}
end
if state ~= 'completed' and state ~= 'failed' and state ~= 'cancelled' then
  return {'active', state}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local sweep = redis.call('HGET', KEYS[1], 'sweep_id') or ''
local results = redis.call('HGET', KEYS[1], 'results') or ''
redis.call('ZREM', prefix .. 'state:' .. state, id)
redis.call('ZREM', prefix .. 'jobs', id)
redis.call('ZREM', prefix .. 'finished', id)
if owner ~= '' then redis.call('ZREM', prefix .. 'owner:' .. owner, id) end
redis.call('DEL', KEYS[1], KEYS[2], prefix .. 'job:' .. id .. ':dependents')
local left = -1
if sweep ~= '' then
  redis.call('ZREM', prefix .. 'sweep:' .. sweep .. ':jobs', id)
  left = redis.call('ZCARD', prefix .. 'sweep:' .. sweep .. ':jobs')
  if left == 0 then
    redis.call('DEL', prefix .. 'sweep:' .. sweep, prefix .. 'sweep:' .. sweep .. ':jobs')
    redis.call('ZREM', prefix .. 'sweeps', sweep)
  end
end
return {'expired', state, sweep, results}
