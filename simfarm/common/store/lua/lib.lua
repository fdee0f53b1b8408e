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

-- ``ev0``: the field as the caller already read it (false: unset), or nil to read it.
local function materialize(jobkey, streamkey, id, ev0)
  if ev0 == nil then ev0 = redis.call('HGET', jobkey, 'ev0') end
  if ev0 then
    write_ev0(streamkey, id, ev0)
    redis.call('HDEL', jobkey, 'ev0')
  end
end

-- One event of a job: on the global stream (capped at global_max), then with the same
-- id on the job's own stream (capped at job_max), after its first event. Its id.
-- ``ev0`` as for materialize (a transition reads it with the rest of the job).
local function emit(jobkey, globalkey, streamkey, global_max, job_max, id, kind, payload,
                    ev0)
  local eid = redis.call('XADD', globalkey, 'MAXLEN', '~', global_max, '*', 'job', id,
    'type', kind, 'data', payload)
  materialize(jobkey, streamkey, id, ev0)
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

-- Usage accounting (docs/operations.md#usage-accounting). Called by the transition that
-- ends an attempt (from scheduled or running to anything else), before it writes: the
-- attempt's node, licences and times are still as they were. In the same atomic step,
-- so an attempt is counted once, whatever retries, stale messages or leader changes
-- follow. ``ended``: completed, failed, cancelled, timeout, lost or requeued.
-- The job's 'usage' field gets the attempt's record (a JSON list, one per attempt); the
-- day roll-ups (K.usage_day) get its wall, core and licence seconds on each UTC day its
-- run covered, and the attempt, its wait and how it ended on the day it ended.
local function record_usage(jobkey, from, ended, now)
  local h = redis.call('HMGET', jobkey, 'owner', 'account', 'node', 'spec', 'scheduled_at',
    'started_at', 'queued_at', 'created_at', 'licenses_held', 'attempt', 'usage')
  local function name(v) if v == nil or v == false or v == '' then return '-' end return v end
  local user, account, node = name(h[1]), name(h[2]), name(h[3])
  local resources = cjson.decode(h[4])['resources'] or {}
  local cores = tonumber(resources['cores'] or 1)  -- ResourceRequest.cores' default
  local pool = {}
  if h[9] then pool = cjson.decode(h[9]) end
  local tokens = {}  -- the node's licence tokens: what it asked for beyond the pools
  for lic, n in pairs(resources['licenses'] or {}) do
    if pool[lic] == nil then tokens[lic] = n end
  end
  local scheduled = tonumber(h[5] or now)
  local started = nil  -- an attempt that never left 'scheduled' never ran
  if from == 'running' and h[6] then started = tonumber(h[6]) end
  local queued = tonumber(h[7] or h[8] or scheduled)
  local wall = 0
  if started then wall = math.max(0, now - started) end
  local record = {attempt = tonumber(h[10] or '0'), user = user, account = account,
    node = node, cores = cores, licenses = next(tokens) and tokens or nil,
    pool_licenses = next(pool) and pool or nil,  -- (empty maps left out: cjson's [] or {})
    scheduled_at = scheduled, started_at = started, ended_at = now, wall_s = wall,
    core_s = wall * cores, wait_s = math.max(0, (started or scheduled) - queued),
    ended = ended}
  local list = {}
  if h[11] then list = cjson.decode(h[11]) end
  table.insert(list, record)
  redis.call('HSET', jobkey, 'usage', cjson.encode(list))
  -- Two roll-ups per day, of each account's and each node's users: the reports by user,
  -- account or node add their rows up (store/usage.py), so an attempt costs two
  -- increments per metric, not five.
  local rows = {['account.user'] = account .. '|' .. user, ['node.user'] = node .. '|' .. user}
  local function add(day, metric, value)
    if value == 0 then return end
    for dim, row in pairs(rows) do
      redis.call('HINCRBYFLOAT', K.usage_day(day, dim), row .. '|' .. metric, value)
    end
  end
  local last = math.floor(now / 86400)
  if started then
    local day = math.floor(started / 86400)
    while day <= last do
      local seconds = math.min(now, (day + 1) * 86400) - math.max(started, day * 86400)
      if seconds > 0 then
        if day < last then redis.call('ZADD', K.usage_days, day, day) end  -- last: below
        add(day, 'wall_s', seconds)
        add(day, 'core_s', seconds * cores)
        for lic, n in pairs(tokens) do add(day, 'lic/' .. lic, seconds * n) end
        for lic, n in pairs(pool) do add(day, 'pool/' .. lic, seconds * n) end
      end
      day = day + 1
    end
  end
  redis.call('ZADD', K.usage_days, last, last)
  add(last, 'attempts', 1)
  add(last, 'wait_s', record['wait_s'])
  add(last, 'end/' .. ended, 1)
end
