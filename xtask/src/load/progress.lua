-- wrk script: progress reports from many viewers, round-robin.
-- Arguments: TOKENS_FILE MOVIE_ID [SESSIONS_FILE]
-- Each line of TOKENS_FILE is one viewer's token; line i of SESSIONS_FILE,
-- when given, is the session id that viewer started.

local tokens, sessions, path = {}, {}, nil
local next_viewer, sequence = 0, 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  if args[3] then
    for line in io.lines(args[3]) do sessions[#sessions + 1] = line end
  end
  path = "/api/v1/stream/" .. args[2] .. "/progress"
  -- Threads start at different viewers.
  next_viewer = math.random(#tokens) - 1
  sequence = os.time() * 100000 + math.random(999)
end

function request()
  next_viewer = next_viewer % #tokens + 1
  sequence = sequence + 1
  local body
  if sessions[next_viewer] then
    body = string.format('{"position_seconds":%d,"session_id":"%s","sequence":%d}',
      sequence % 3000, sessions[next_viewer], sequence)
  else
    body = string.format('{"position_seconds":%d}', sequence % 3000)
  end
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. tokens[next_viewer],
    ["Content-Type"] = "application/json",
  }, body)
end
