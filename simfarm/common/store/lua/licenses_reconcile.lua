-- Recompute the farm's licence holdings from the jobs that hold them (the scheduled and
-- running ones, each with its 'licenses_held' field); with ARGV[1] = '1', repair the
-- pools' counts where they drifted. Returns JSON {held, running, drift}: per pool, held
-- by every active job, by running ones only, and {pool, counted, recorded} drifts.
local held, running = {}, {}
for _, state in ipairs({'scheduled', 'running'}) do
  for _, id in ipairs(redis.call('ZRANGE', K.state(state), 0, -1)) do
    local h = redis.call('HGET', K.job(id), 'licenses_held')
    if h then
      for name, n in pairs(cjson.decode(h)) do
        held[name] = (held[name] or 0) + n
        if state == 'running' then running[name] = (running[name] or 0) + n end
      end
    end
  end
end
local recorded = {}
local flat = redis.call('HGETALL', K.licenses_held)
for i = 1, #flat, 2 do recorded[flat[i]] = tonumber(flat[i + 1]) end
local drift = {}
for name, n in pairs(recorded) do
  if (held[name] or 0) ~= n then table.insert(drift, {name, held[name] or 0, n}) end
end
for name, n in pairs(held) do
  if recorded[name] == nil then table.insert(drift, {name, n, 0}) end
end
if ARGV[1] == '1' and #drift > 0 then
  redis.call('DEL', K.licenses_held)
  for name, n in pairs(held) do redis.call('HSET', K.licenses_held, name, n) end
end
-- (cjson writes an empty table as {}: the reader takes {} for "nothing" everywhere)
return cjson.encode({held = held, running = running, drift = drift})
