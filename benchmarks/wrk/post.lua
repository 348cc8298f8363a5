-- wrk script of benchmarks/run.sh: POSTs one JSON body, optionally paced to a fixed rate, and
-- prints a machine-readable summary line ("BENCH_JSON {...}") for the harness.
--
-- Environment:
--   BENCH_BODY_FILE  the request body (required)
--   BENCH_AUTH       API key sent as "Authorization: Bearer ..." (optional)
--   BENCH_RATE       requests per second over all threads; 0 or unset = as fast as possible
--   BENCH_THREADS    wrk's -t, to split BENCH_RATE between threads (default 1)
--   BENCH_KEYED      1: every "__KEY__" in the body becomes a key of its own per request (a
--                    per-thread counter with a random prefix), e.g. a distinct ordering key
--
-- Pacing: plain wrk has no rate limit (wrk2 is not in Debian). Each thread hands out send slots
-- at a fixed interval from a monotonic clock (LuaJIT FFI clock_gettime) and delay() holds a
-- connection until its slot. The rate is reached while connections suffice (rate x latency);
-- the harness always reports the achieved rate, never the requested one. Latency is measured by
-- wrk from the moment a request is sent, so it excludes the pacing wait.

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY_FILE"))
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

if os.getenv("BENCH_KEYED") == "1" then
  local template = wrk.body
  local counter = 0
  local prefix = nil
  function request()
    if prefix == nil then
      math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
      prefix = string.format("k%08x-", math.random(0, 0x7fffffff))
    end
    counter = counter + 1
    local body = template:gsub("__KEY__", prefix .. counter)
    return wrk.format(nil, nil, nil, body)
  end
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local threads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1

if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]]
  local CLOCK_MONOTONIC = 1
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end

  local interval_ms = 1000 * threads / rate
  local next_slot = nil

  function delay()
    local now = now_ms()
    if next_slot == nil then next_slot = now end
    next_slot = next_slot + interval_ms
    -- Behind schedule by more than 100 ms (the server is slower than the rate): do not make up
    -- for it with a burst; the achieved rate shows the shortfall.
    if next_slot < now - 100 then next_slot = now end
    local wait = next_slot - now
    if wait <= 0 then return 0 end
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,' ..
    '"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
