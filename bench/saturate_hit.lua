-- wrk script: POST the same saturation again and again, so every request after the first is a
-- memo-cache hit. Used by bench/cache_hit_throughput.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"expression": "(+ (* a b) (* a c))"}'

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.0f non_2xx=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), non2xx,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
