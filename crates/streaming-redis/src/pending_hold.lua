-- Hold acknowledged writes until the durable store has them.
-- KEYS[1]: sorted set, id -> held at (ms, Redis's clock); KEYS[2]: hash,
-- id -> "stamp\ngroup\norder\nbody". Both of one kind and shard (one slot).
-- ARGV, five per write: id, stamp, group ('' = unordered), order, body.
-- A write does not replace a held one of the same group with a higher order.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i = 1, #ARGV, 5 do
  local id, stamp, group, order, body = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local keep = false
  if group ~= '' then
    local held = redis.call('HGET', KEYS[2], id)
    if held then
      local held_group, held_order = string.match(held, '^[^\n]*\n([^\n]*)\n([^\n]*)\n')
      keep = held_group == group and tonumber(held_order) ~= nil and tonumber(held_order) > tonumber(order)
    end
  end
  if not keep then
    redis.call('HSET', KEYS[2], id, stamp .. '\n' .. group .. '\n' .. order .. '\n' .. body)
    redis.call('ZADD', KEYS[1], now, id)
  end
end
return 1
