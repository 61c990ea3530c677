-- GCRA rate limit, atomic. Time comes from the Redis server, so every
-- instance sharing this Redis agrees on it.
-- KEYS[1]: the limiter key.  ARGV[1]: emission interval (µs).  ARGV[2]: period (µs).
-- Returns {1, remaining} when allowed, {0, retry_after_µs} when limited.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local ahead = next_tat - now
if ahead > period then
  return {0, ahead - period}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((period - ahead) / interval)}
