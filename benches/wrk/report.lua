-- Prints one JSON line with what benches/summarize.py needs: counts, rate, latency percentiles.
-- Env: WRK_METHOD (GET/POST), WRK_BODY_FILE, WRK_DELAY_MS (pacing per connection), WRK_CLOSE=1.
local method = os.getenv("WRK_METHOD") or "GET"
local body_file = os.getenv("WRK_BODY_FILE")
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
wrk.method = method
wrk.headers["Authorization"] = "Bearer bench-token-1"
wrk.headers["Content-Type"] = "application/scim+json"
if os.getenv("WRK_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
if body_file then
  local f = io.open(body_file, "r")
  wrk.body = f:read("*a")
  f:close()
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, errs, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
