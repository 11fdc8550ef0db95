#!/usr/bin/env bash
# HTTP merges per second on /crdt/merge, measured with wrk on loopback (wrk and the
# server share the machine's cores), with GET /health as the peer: the cheapest
# route of the same server.
#   1. GCounter, a fresh pair per request: every merge is computed (misses).
#   2. TextCRDT, pairs of 32 small Yjs documents, memo cache off (--crdt-cache-capacity 1): computed.
#   3. The same with the cache on: after warm-up, memo hits.
# Usage: bench/crdt_merge_throughput.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 1; }
cargo build --release -q -p ramanujan
bin="${CARGO_TARGET_DIR:-target}/release/ramanujan"

serve() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LOG_LEVEL=warn "$bin" up --in-memory --port "$port" "$@" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT

serve --crdt-cache-capacity 1
{
  echo "return {"
  for i in $(seq 32); do
    curl -sf -X POST "http://127.0.0.1:$port/crdt/apply" -H 'content-type: application/json' \
      -d "{\"crdt_type\":\"TextCRDT\",\"actor\":\"$i\",\"ops\":[{\"op\":\"insert\",\"index\":0,\"text\":\"héllo wörld $i\"}]}" |
      python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["state"]) + ",")'
  done
  echo "}"
} > bench/.text_states.lua
echo "GCounter merges, every one computed:"
MODE=gcounter wrk -t2 -c"$conns" -d"${secs}s" -s bench/crdt_merge.lua "http://127.0.0.1:$port/crdt/merge" | tail -1
echo "TextCRDT merges, cache off:"
MODE=text wrk -t2 -c"$conns" -d"${secs}s" -s bench/crdt_merge.lua "http://127.0.0.1:$port/crdt/merge" | tail -1
echo "peer (GET /health):"
wrk -t2 -c"$conns" -d"${secs}s" -s /dev/stdin "http://127.0.0.1:$port/health" <<'LUA' | tail -1
done = function(summary, latency, requests)
  io.write(string.format("requests=%d duration_s=%.2f req_per_s=%.0f non_2xx=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), summary.errors.status,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
LUA
stop

serve
echo "TextCRDT merges, cache on:"
MODE=text wrk -t2 -c"$conns" -d"${secs}s" -s bench/crdt_merge.lua "http://127.0.0.1:$port/crdt/merge" | tail -1
curl -s "http://127.0.0.1:$port/crdt/stats"; echo
