-- GET BENCH_PREFIX .. <a random line of BENCH_IDS> (or BENCH_PREFIX alone when no ids file).
local ids = {}
local file = os.getenv("BENCH_IDS")
if file and file ~= "" then
  for line in io.lines(file) do ids[#ids + 1] = line end
end
local prefix = os.getenv("BENCH_PREFIX")
local token = os.getenv("BENCH_TOKEN")
local headers = {}
if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end

request = function()
  local path = prefix
  if #ids > 0 then path = prefix .. ids[math.random(#ids)] end
  return wrk.format("GET", path, headers)
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
