-- The newest jobs of an index (KEYS[1]: every job's, or one owner's) as rows, in one
-- call: up to ARGV[2] ids scored below ARGV[1] ('+inf' or '(<seq>'), newest first, each
-- followed by the fields ARGV[3..] of its hash (nil where unset). Returns
-- {score of the last id read or '', id, field values..., id, field values..., ...}.
local index = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
                         'LIMIT', 0, tonumber(ARGV[2]))
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local out = {''}
for i = 1, #index, 2 do
  out[#out + 1] = index[i]
  local values = redis.call('HMGET', K.job(index[i]), unpack(fields))
  for j = 1, #fields do out[#out + 1] = values[j] end
end
if #index > 0 then out[1] = index[#index] end
return out
