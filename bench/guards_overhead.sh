#!/usr/bin/env bash
# What the host's guards cost (#21): the cache-hit and CRDT-merge throughput
# benchmarks against a host with no guards, and against one with API keys and a
# rate limit on (every request authenticated with a write key and counted
# against its client's budget, which is set high enough never to refuse), in
# the same run, alternating off / on / off / on so this machine's drift falls on
# both alike. wrk and the server share the machine's cores.
# Usage: bench/guards_overhead.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-64}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 1; }
cargo build --release -q -p ramanujan
bin="${CARGO_TARGET_DIR:-target}/release/ramanujan"
key="bench-write-key-0123456789"

serve() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LOG_LEVEL=warn "$bin" up --in-memory --port "$port" "$@" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST "http://127.0.0.1:$port/egraph/saturate" -H 'content-type: application/json' \
    -H "Authorization: Bearer $key" -d '{"expression": "(+ (* a b) (* a c))"}' >/dev/null
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT

measure() {
  echo "cache hits (POST /egraph/saturate), guards $1:"
  wrk -t2 -c"$conns" -d"${secs}s" -H "Authorization: Bearer $key" -s bench/saturate_hit.lua \
    "http://127.0.0.1:$port/egraph/saturate" | tail -1
  echo "GCounter merges (POST /crdt/merge), guards $1:"
  AUTH="Bearer $key" MODE=gcounter wrk -t2 -c"$conns" -d"${secs}s" -s bench/crdt_merge.lua \
    "http://127.0.0.1:$port/crdt/merge" | tail -1
}

for round in 1 2; do
  serve
  measure off
  stop
  serve --api-keys "write:$key" --rate-limit 4000000000 --rate-limit-burst 4000000000
  measure on
  stop
done
