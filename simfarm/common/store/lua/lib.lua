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

-- Wake the dispatcher (its BLPOP on ``key``): one nudge is enough, more are trimmed.
local function nudge(key)
  if redis.call('LPUSH', key, '1') > 1 then redis.call('LTRIM', key, 0, 0) end
end

-- A job's fields as a table (name -> value, false when unset), read in one HMGET: a
-- script reads once what it and the helpers below need of the job.
local function read_job(jobkey, names)
  local values = redis.call('HMGET', jobkey, unpack(names))
  local job = {}
  for i, name in ipairs(names) do job[name] = values[i] end
  return job
end

-- ``ev0``: the field as the caller already read it (false: unset), or nil to read it.
-- ``del``: the caller's list of fields it deletes afterwards, to add 'ev0' to instead of
-- deleting it here (nil: deleted here).
local function materialize(jobkey, streamkey, id, ev0, del)
  if ev0 == nil then ev0 = redis.call('HGET', jobkey, 'ev0') end
  if ev0 then
    write_ev0(streamkey, id, ev0)
    if del then table.insert(del, 'ev0') else redis.call('HDEL', jobkey, 'ev0') end
  end
end

-- One event of a job: on the global stream (capped at global_max), then with the same
-- id on the job's own stream (capped at job_max), after its first event. Its id.
-- ``ev0`` and ``del`` as for materialize (a transition reads ev0 with the rest of the job).
local function emit(jobkey, globalkey, streamkey, global_max, job_max, id, kind, payload,
                    ev0, del)
  local eid = redis.call('XADD', globalkey, 'MAXLEN', '~', global_max, '*', 'job', id,
    'type', kind, 'data', payload)
  materialize(jobkey, streamkey, id, ev0, del)
  redis.call('XADD', streamkey, 'MAXLEN', '~', job_max, eid, 'job', id, 'type', kind,
    'data', payload)
  return eid
end

-- The job fields the helpers below read, for the caller's read_job.
local ENDING_FIELDS = {'owner', 'account', 'node', 'notify', 'watched', 'licenses_held',
  'spec', 'scheduled_at', 'started_at', 'queued_at', 'created_at', 'attempt', 'usage'}

-- A job that just ended goes to the notifier's queue (docs/notifications.md) when it
-- asked for notifications (its 'notify' field) or its owner has webhooks for all jobs.
-- ``job``: its fields 'notify' and 'owner' (read_job).
local function notify_ended(job, id)
  if job.notify == '1' or redis.call('SISMEMBER', K.notify_owners, job.owner or '') == 1 then
    redis.call('RPUSH', K.notify_ended, id)
  end
end

-- A job's licences of the farm's pools go back to the pools when its attempt ends
-- (whatever the end: completed, failed, cancelled, timed out, lost, requeued): its
-- 'licenses_held' field (in ``job``) says how many of each it drew when it was placed.
-- True when it held some: the caller deletes the field.
local function return_licenses(job)
  local held = job.licenses_held
  if not held then return false end
  for name, n in pairs(cjson.decode(held)) do
    redis.call('HINCRBY', K.licenses_held, name, -n)
  end
  return true
end

-- The jobs of each owner and each account that have not started yet (pending or held),
-- for the limits on pending jobs (gateway/admission.py): K.queued, one field per
-- 'user/<owner>' and 'account/<account>'. Called by every script that changes a job's
-- state, with the state before ('' for a new job) and after; ``job``: its 'owner' and
-- 'account'.
local function count_waiting(job, from, to)
  local was = from == 'pending' or from == 'held'
  local now = to == 'pending' or to == 'held'
  if was == now then return end
  local step = now and 1 or -1
  local who = {['user/'] = job.owner, ['account/'] = job.account}
  for kind, name in pairs(who) do
    if name and name ~= '' then
      if redis.call('HINCRBY', K.queued, kind .. name, step) < 0 then
        redis.call('HSET', K.queued, kind .. name, 0)  -- jobs from before the count
      end
    end
  end
end

-- Usage accounting (docs/operations.md#usage-accounting). Called by the transition that
-- ends an attempt (from scheduled or running to anything else), before it writes: the
-- attempt's node, licences and times (``job``: ENDING_FIELDS, read_job) are still as
-- they were. In the same atomic step, so an attempt is counted once, whatever retries,
-- stale messages or leader changes follow. ``ended``: completed, failed, cancelled,
-- timeout, lost or requeued. Returns the job's new 'usage' field (a JSON list, one
-- record per attempt), which the caller writes with the rest of its change; the day
-- roll-ups (K.usage_rollup) get the attempt's wall, core and licence seconds on each UTC
-- day its run covered, and the attempt, its wait and how it ended on the day it ended.
local function record_usage(job, from, ended, now)
  local function name(v) if v == nil or v == false or v == '' then return '-' end return v end
  local user, account, node = name(job.owner), name(job.account), name(job.node)
  local resources = cjson.decode(job.spec)['resources'] or {}
  local cores = tonumber(resources['cores'] or 1)  -- ResourceRequest.cores' default
  local pool = {}
  if job.licenses_held then pool = cjson.decode(job.licenses_held) end
  local tokens = {}  -- the node's licence tokens: what it asked for beyond the pools
  for lic, n in pairs(resources['licenses'] or {}) do
    if pool[lic] == nil then tokens[lic] = n end
  end
  local scheduled = tonumber(job.scheduled_at or now)
  local started = nil  -- an attempt that never left 'scheduled' never ran
  if from == 'running' and job.started_at then started = tonumber(job.started_at) end
  local queued = tonumber(job.queued_at or job.created_at or scheduled)
  local wall = 0
  if started then wall = math.max(0, now - started) end
  local record = {attempt = tonumber(job.attempt or '0'), user = user, account = account,
    node = node, cores = cores, licenses = next(tokens) and tokens or nil,
    pool_licenses = next(pool) and pool or nil,  -- (empty maps left out: cjson's [] or {})
    scheduled_at = scheduled, started_at = started, ended_at = now, wall_s = wall,
    core_s = wall * cores, wait_s = math.max(0, (started or scheduled) - queued),
    ended = ended}
  local list = {}
  if job.usage then list = cjson.decode(job.usage) end
  table.insert(list, record)
  -- One hash per day; two rows in it, the attempt's account and user and its node and
  -- user (the reports by user, account or node add rows up: store/usage.py), each a JSON
  -- map of metrics: a day the attempt covered costs one HMGET and one HSET.
  local days = {}  -- day -> metric -> seconds (or count) to add
  local order = {}
  local function add(day, metric, value)
    if value == 0 then return end
    if not days[day] then days[day] = {}; table.insert(order, day) end
    days[day][metric] = (days[day][metric] or 0) + value
  end
  local last = math.floor(now / 86400)
  if started then
    local day = math.floor(started / 86400)
    while day <= last do
      local seconds = math.min(now, (day + 1) * 86400) - math.max(started, day * 86400)
      if seconds > 0 then
        add(day, 'wall_s', seconds)
        add(day, 'core_s', seconds * cores)
        for lic, n in pairs(tokens) do add(day, 'lic/' .. lic, seconds * n) end
        for lic, n in pairs(pool) do add(day, 'pool/' .. lic, seconds * n) end
      end
      day = day + 1
    end
  end
  add(last, 'attempts', 1)
  add(last, 'wait_s', record['wait_s'])
  add(last, 'end/' .. ended, 1)
  local rows = {'account.user|' .. account .. '|' .. user, 'node.user|' .. node .. '|' .. user}
  for _, day in ipairs(order) do
    local key = K.usage_rollup(day)
    local before = redis.call('HMGET', key, rows[1], rows[2])
    -- a day gets into the index with its first row (the index goes with the hash)
    if not before[1] or not before[2] then redis.call('ZADD', K.usage_days, day, day) end
    local set = {}
    for i, row in ipairs(rows) do
      local metrics = {}
      if before[i] then metrics = cjson.decode(before[i]) end
      for metric, value in pairs(days[day]) do metrics[metric] = (metrics[metric] or 0) + value end
      table.insert(set, row); table.insert(set, cjson.encode(metrics))
    end
    redis.call('HSET', key, unpack(set))
  end
  return cjson.encode(list)
end
