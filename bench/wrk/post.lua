-- wrk script of bench/run.sh: one POST with a fixed body and headers, and a one-line JSON report.
--
-- Environment (read once per thread and in done()):
--   WRK_BODY          the request body                                   (required)
--   WRK_CONTENT_TYPE  its media type        [application/x-www-form-urlencoded]
--   WRK_BEARER        an access token: adds 'Authorization: Bearer <it>'  (optional)
--   WRK_REPORT        file that done() writes the JSON report to          (optional)
--
-- Run by hand, e.g.:
--   WRK_BODY='client_id=...&scope=...' wrk -t2 -c32 -d20s --latency -s bench/wrk/post.lua \
--     https://127.0.0.1:4443/sandbox/abc.onmicrosoft.com/oauth2/v2.0/devicecode

wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or error("WRK_BODY is not set")
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
local bearer = os.getenv("WRK_BEARER")
if bearer and bearer ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bearer
end

-- Latencies are in microseconds; durations in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local line = string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,'
      .. '"non_2xx_3xx":%d}',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status)
  local path = os.getenv("WRK_REPORT")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    f:write(line, "\n")
    f:close()
  end
  io.write("report: ", line, "\n")
end
