-- Store progress hot copies, each unless the stored one is a newer report of
-- the same session (the same rule as the durable store), so racing writers
-- never put an older position back.
-- KEYS[i]: progress key of copy i (a cluster client sends only keys of one slot).
-- ARGV[1]: TTL ms.  For copy i: ARGV[3i-1] JSON, ARGV[3i] session id or "", ARGV[3i+1] sequence.
-- Returns how many copies were stored.
local stored_count = 0
for i = 1, #KEYS do
  local body, session, sequence = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local keep = false
  local current = redis.call('GET', KEYS[i])
  if current and session ~= '' then
    local ok, stored = pcall(cjson.decode, current)
    keep = ok and type(stored) == 'table' and stored['session_id'] == session
      and tonumber(stored['sequence']) ~= nil and tonumber(stored['sequence']) >= tonumber(sequence)
  end
  if not keep then
    redis.call('SET', KEYS[i], body, 'PX', ARGV[1])
    stored_count = stored_count + 1
  end
end
return stored_count
