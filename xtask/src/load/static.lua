-- wrk script: one fixed request, sent over and over (wrk's fast path: no
-- Lua per request). Arguments: METHOD [TOKEN|-] [BODY]

function init(args)
  wrk.method = args[1]
  if args[2] and args[2] ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
  if args[3] then
    wrk.body = args[3]
    wrk.headers["Content-Type"] = "application/json"
  end
end
