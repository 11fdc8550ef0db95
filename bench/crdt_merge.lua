-- wrk script for POST /crdt/merge. MODE (env): "gcounter" (a fresh pair of
-- counters per request, so every merge is computed) or "text" (pairs drawn from
-- the TextCRDT states in bench/.text_states.lua, written by crdt_merge_throughput.sh).
local mode = os.getenv("MODE") or "gcounter"
local states = {}
if mode == "text" then states = dofile("bench/.text_states.lua") end
local headers = { ["content-type"] = "application/json" }
-- AUTH (env): an Authorization header to send (bench/guards_overhead.sh).
if os.getenv("AUTH") then headers["Authorization"] = os.getenv("AUTH") end
local counter = 0

request = function()
  counter = counter + 1
  local body
  if mode == "text" then
    local i = math.random(#states)
    local j = math.random(#states)
    body = string.format('{"crdt_type":"TextCRDT","states":["%s","%s"]}', states[i], states[j])
  else
    body = string.format(
      '{"crdt_type":"GCounter","states":[{"inner":{"dots":{"a":%d,"b":%d}}},{"inner":{"dots":{"b":%d,"c":%d}}}]}',
      counter, math.random(1, 1000000), math.random(1, 1000000), math.random(1, 1000000))
  end
  return wrk.format("POST", nil, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.0f non_2xx=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), summary.errors.status,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
