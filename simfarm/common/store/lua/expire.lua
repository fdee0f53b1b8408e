-- Forget a finished job: its hash, events and every index entry. Refuses a job that is
-- not finished. KEYS: 1 job hash, 2 job events
-- ARGV: 1 job id
local state = redis.call('HGET', KEYS[1], 'state')
local id = ARGV[1]
if not state then
  redis.call('ZREM', K.finished, id)
  return {'missing', ''}
end
if state ~= 'completed' and state ~= 'failed' and state ~= 'cancelled' then
  return {'active', state}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local sweep = redis.call('HGET', KEYS[1], 'sweep_id') or ''
local results = redis.call('HGET', KEYS[1], 'results') or ''
redis.call('ZREM', K.state(state), id)
redis.call('ZREM', K.all_jobs, id)
redis.call('ZREM', K.finished, id)
if owner ~= '' then redis.call('ZREM', K.owner(owner), id) end
redis.call('DEL', KEYS[1], KEYS[2], K.dependents(id))
redis.call('INCR', K.rows_version)  -- listings change (JobStore.listing_version)
local left = -1
if sweep ~= '' then
  redis.call('ZREM', K.sweep_jobs(sweep), id)
  left = redis.call('ZCARD', K.sweep_jobs(sweep))
  if left == 0 then
    redis.call('DEL', K.sweep(sweep), K.sweep_jobs(sweep))
    redis.call('ZREM', K.sweeps, sweep)
  end
end
return {'expired', state, sweep, results}
