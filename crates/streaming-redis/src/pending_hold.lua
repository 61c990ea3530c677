-- Hold acknowledged writes until the durable store has them.
-- KEYS, in pairs, one pair per kind and shard (on a cluster a call carries
-- one pair, one slot): a sorted set, id -> held at (ms, Redis's clock), and
-- a hash, id -> "stamp\ngroup\norder\nbody".
-- ARGV, six per write: its pair's number (from 1), id, stamp, group ('' =
-- unordered), order, body. A write does not replace a held one of the same
-- group with a higher order.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i = 1, #ARGV, 6 do
  local pair = tonumber(ARGV[i])
  local at, writes = KEYS[2 * pair - 1], KEYS[2 * pair]
  local id, stamp, group, order, body = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local keep = false
  if group ~= '' then
    local held = redis.call('HGET', writes, id)
    if held then
      local held_group, held_order = string.match(held, '^[^\n]*\n([^\n]*)\n([^\n]*)\n')
      keep = held_group == group and tonumber(held_order) ~= nil and tonumber(held_order) > tonumber(order)
    end
  end
  if not keep then
    redis.call('HSET', writes, id, stamp .. '\n' .. group .. '\n' .. order .. '\n' .. body)
    redis.call('ZADD', at, now, id)
  end
end
return 1
