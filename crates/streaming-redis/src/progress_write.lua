-- Store the progress hot copy unless the stored one is a newer report of the
-- same session (the same rule as the durable store), so racing writers never
-- put an older position back.
-- KEYS[1]: progress key.  ARGV[1]: JSON.  ARGV[2]: session id or "".  ARGV[3]: sequence.  ARGV[4]: TTL ms.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and ARGV[2] ~= '' and stored['session_id'] == ARGV[2] and tonumber(stored['sequence']) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
