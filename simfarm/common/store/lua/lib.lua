-- Helpers prepended to the scripts that call them (see scripts.py).
-- A new job keeps its first event ("pending") in its hash field 'ev0' ('<id> <data>')
-- instead of a stream of its own: a Redis stream costs ~4.7 KB even with one entry,
-- and a queued job may wait long. The first later event of the job writes ev0 into
-- the job's stream (with its original id) before its own: readers see one history.
local function write_ev0(streamkey, id, ev0)
  local sep = string.find(ev0, ' ', 1, true)
  redis.call('XADD', streamkey, string.sub(ev0, 1, sep - 1), 'job', id, 'type', 'state',
    'data', string.sub(ev0, sep + 1))
end

local function materialize(jobkey, streamkey, id)
  local ev0 = redis.call('HGET', jobkey, 'ev0')
  if ev0 then
    write_ev0(streamkey, id, ev0)
    redis.call('HDEL', jobkey, 'ev0')
  end
end

-- One event of a job: on the global stream (capped at global_max), then with the same
-- id on the job's own stream (capped at job_max), after its first event. Its id.
local function emit(jobkey, globalkey, streamkey, global_max, job_max, id, kind, payload)
  local eid = redis.call('XADD', globalkey, 'MAXLEN', '~', global_max, '*', 'job', id,
    'type', kind, 'data', payload)
  materialize(jobkey, streamkey, id)
  redis.call('XADD', streamkey, 'MAXLEN', '~', job_max, eid, 'job', id, 'type', kind,
    'data', payload)
  return eid
end

-- A job that just ended goes to the notifier's queue (docs/notifications.md) when it
-- asked for notifications (its 'notify' field) or its owner has webhooks for all jobs.
local function notify_ended(jobkey, id)
  local wants = redis.call('HMGET', jobkey, 'notify', 'owner')
  if wants[1] == '1' or redis.call('SISMEMBER', K.notify_owners, wants[2] or '') == 1 then
    redis.call('RPUSH', K.notify_ended, id)
  end
end

-- A job's licences of the farm's pools go back to the pools when its attempt ends
-- (whatever the end: completed, failed, cancelled, timed out, lost, requeued): its
-- 'licenses_held' field says how many of each it drew when it was placed.
local function return_licenses(jobkey)
  local held = redis.call('HGET', jobkey, 'licenses_held')
  if held then
    for name, n in pairs(cjson.decode(held)) do
      redis.call('HINCRBY', K.licenses_held, name, -n)
    end
    redis.call('HDEL', jobkey, 'licenses_held')
  end
end

-- The jobs of each owner and each account that have not started yet (pending or held),
-- for the limits on pending jobs (gateway/admission.py): K.queued, one field per
-- 'user/<owner>' and 'account/<account>'. Called by every script that changes a job's
-- state, with the state before ('' for a new job) and after.
local function count_waiting(jobkey, from, to)
  local was = from == 'pending' or from == 'held'
  local now = to == 'pending' or to == 'held'
  if was == now then return end
  local who = redis.call('HMGET', jobkey, 'owner', 'account')
  local step = now and 1 or -1
  local kinds = {'user/', 'account/'}
  for i = 1, 2 do
    local name = who[i]
    if name and name ~= '' then
      if redis.call('HINCRBY', K.queued, kinds[i] .. name, step) < 0 then
        redis.call('HSET', K.queued, kinds[i] .. name, 0)  -- jobs from before the count
      end
    end
  end
end
