#!/usr/bin/env bash
# HTTP throughput of /egraph/saturate cache hits, and of /health as the peer (the cheapest route of
# the same server), measured with wrk on loopback. wrk and the server share the machine's cores.
# Usage: bench/cache_hit_throughput.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 1; }
cargo build --release -q -p ramanujan
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG_LEVEL=warn "${CARGO_TARGET_DIR:-target}/release/ramanujan" up --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$port/egraph/saturate" -H 'content-type: application/json' \
  -d '{"expression": "(+ (* a b) (* a c))"}' >/dev/null
echo "cache hits (POST /egraph/saturate):"
wrk -t2 -c"$conns" -d"${secs}s" -s bench/saturate_hit.lua "http://127.0.0.1:$port/egraph/saturate" | tail -1
echo "peer (GET /health):"
wrk -t2 -c"$conns" -d"${secs}s" -s /dev/stdin "http://127.0.0.1:$port/health" <<'LUA' | tail -1
done = function(summary, latency, requests)
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.0f non_2xx=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), summary.errors.status,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
LUA
curl -s "http://127.0.0.1:$port/egraph/stats"; echo
