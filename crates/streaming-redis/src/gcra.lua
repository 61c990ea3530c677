-- GCRA rate limit, atomic, in leases. Time comes from the Redis server, so
-- every instance sharing this Redis agrees on it.
-- KEYS[1]: the limiter key.
-- ARGV[1]: emission interval (µs).  ARGV[2]: period (µs).
-- ARGV[3]: how many requests to reserve (at least 1).
-- ARGV[4]: how many of an earlier reservation went unused (given back first).
-- Returns {granted, remaining} with granted >= 1 when allowed (granted may be
-- fewer than asked near the limit), {0, retry_after_µs} when limited.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local want = math.max(1, tonumber(ARGV[3]) or 1)
local refund = math.max(0, tonumber(ARGV[4]) or 0)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
tat = tat - refund * interval
if tat < now then tat = now end
local fit = math.floor((period - (tat - now)) / interval)
local granted = math.min(want, fit)
if granted < 1 then
  if refund > 0 then
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  return {0, tat + interval - now - period}
end
local next_tat = tat + granted * interval
local ahead = next_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil(ahead / 1000))
return {granted, math.floor((period - ahead) / interval)}
