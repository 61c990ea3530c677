-- Claim writes held for at least ARGV[1] ms: each gets stamp ARGV[3] and
-- counts as held from now + ARGV[2] (lease) - ARGV[1], so no other claim of
-- that age takes it until the lease runs out. At most ARGV[4] of them.
-- KEYS[1], KEYS[2]: one pair of pending_hold.lua. Returns id, "group\norder\nbody" pairs.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local age, lease, stamp = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - age, 'LIMIT', 0, tonumber(ARGV[4]))
local claimed = {}
for _, id in ipairs(ids) do
  local held = redis.call('HGET', KEYS[2], id)
  local rest = held and string.match(held, '^[^\n]*\n(.*)$')
  if rest then
    redis.call('HSET', KEYS[2], id, stamp .. '\n' .. rest)
    redis.call('ZADD', KEYS[1], now + lease - age, id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = rest
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
return claimed
