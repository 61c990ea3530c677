-- Forget written writes whose held stamp is still the one written.
-- KEYS[1], KEYS[2]: one pair of pending_hold.lua; ARGV, two per write: id, stamp.
local released = 0
for i = 1, #ARGV, 2 do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  local prefix = ARGV[i + 1] .. '\n'
  if held and string.sub(held, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    released = released + 1
  end
end
return released
