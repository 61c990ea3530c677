-- wrk script: POSTs that walk through every (viewer, path) pair in order, so
-- no pair repeats before TOKENS x PATHS requests.
-- Arguments: TOKENS_FILE PATHS_FILE BODY

local tokens, paths, body = {}, {}, "{}"
local counter = 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  for line in io.lines(args[2]) do paths[#paths + 1] = line end
  body = args[3]
end

function request()
  local viewer = counter % #tokens + 1
  local path = math.floor(counter / #tokens) % #paths + 1
  counter = counter + 1
  return wrk.format("POST", paths[path], {
    ["Authorization"] = "Bearer " .. tokens[viewer],
    ["Content-Type"] = "application/json",
  }, body)
end

