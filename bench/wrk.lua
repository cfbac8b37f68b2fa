-- wrk script for bench/run: one POST /v1/chat/completions per request, then one
-- machine-readable summary line when the run ends.
--
-- Configured by environment (wrk's Lua has os.getenv):
--   BENCH_MODE    "plain" (non-streaming) or "stream"
--   BENCH_EVENTS  events per stream, passed to the fake upstream's "fake" script object
--   BENCH_API_KEY bearer token sent by the client (the fake upstream ignores it)
--
-- No response() hook on purpose: defining one makes wrk hand every response's headers and
-- body to Lua, which slows the load generator down more than the proxies we measure.
-- Status errors are counted by wrk itself (summary.errors.status: any status >= 400).

local mode = os.getenv("BENCH_MODE") or "plain"
local events = tonumber(os.getenv("BENCH_EVENTS") or "20")
local api_key = os.getenv("BENCH_API_KEY") or "sk-bench"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. api_key

local messages = '[{"role":"user","content":"hi"}]'
if mode == "stream" then
  wrk.body = string.format(
    '{"model":"gpt-4o-mini","messages":%s,"stream":true,"fake":{"events":%d}}',
    messages, events)
elseif mode == "plain" then
  wrk.body = string.format('{"model":"gpt-4o-mini","messages":%s}', messages)
else
  error("BENCH_MODE must be plain or stream, got " .. mode)
end

-- One line, prefixed so bench/run can pick it out of wrk's human-readable report.
-- Latencies are in microseconds (wrk records them at that resolution).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
