-- POST /v1/incidents, one in-stock device per request: thread t takes the lines i of BENCH_IDS
-- with i % BENCH_THREADS == t, so no device is reported twice; each request has its own
-- Idempotency-Key. When a thread runs out of devices it repeats one (a 409, counted as non-2xx).
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local mine = {}
local next_index = 0
local headers = {}

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("BENCH_IDS")) do
    if i % threads == tid then mine[#mine + 1] = line end
    i = i + 1
  end
  headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  headers["Content-Type"] = "application/json"
end

request = function()
  next_index = next_index + 1
  local device = mine[((next_index - 1) % #mine) + 1]
  headers["Idempotency-Key"] = os.getenv("BENCH_RUN") .. "-" .. tid .. "-" .. next_index
  local body = '{"deviceId":"' .. device .. '","kind":"lost","location":{"category":"transit"},' ..
    '"circumstances":"Left on a train (benchmark).","personalDataAtRisk":false}'
  return wrk.format("POST", "/v1/incidents", headers, body)
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
