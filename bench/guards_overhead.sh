#!/usr/bin/env bash
# What the host's guards cost (#21): the cache-hit and CRDT-merge throughput
# benchmarks against a host with no guards, and against one with API keys and a
# rate limit on (every request authenticated with a write key and counted
# against its client's budget, which is set high enough never to refuse), in
# the same run, alternating off / on / off / on so this machine's drift falls on
# both alike. wrk and the server share the machine's cores. Ends with each
# workload's mean throughput off and on and the median of the per-round ratios.
# Usage: [BIN=path] bench/guards_overhead.sh [seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-64}
rounds=${3:-2}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)"; exit 1; }
# BIN: another build of the host to measure (an older commit's, say).
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p ramanujan
fi
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/ramanujan}"
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

results=$(mktemp)
# The server's CPU time so far (user + system), in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
# One wrk run; records its line and the server's CPU time per request.
run() {
  local workload=$1 guards=$2 before line after
  shift 2
  before=$(ticks)
  line=$("$@" | tail -1)
  after=$(ticks)
  line="$line cpu_us_per_req=$(python3 -c "import re,sys,os; n=int(re.search(r'requests=(\d+)', sys.argv[1]).group(1)); print(round(($after-$before)*1e6/os.sysconf('SC_CLK_TCK')/n, 2))" "$line")"
  echo "$line"; echo "$workload $guards $round $line" >>"$results"
}
measure() {
  echo "cache hits (POST /egraph/saturate), guards $1:"
  run hit "$1" wrk -t2 -c"$conns" -d"${secs}s" -H "Authorization: Bearer $key" -s bench/saturate_hit.lua \
    "http://127.0.0.1:$port/egraph/saturate"
  echo "GCounter merges (POST /crdt/merge), guards $1:"
  run merge "$1" env AUTH="Bearer $key" MODE=gcounter wrk -t2 -c"$conns" -d"${secs}s" -s bench/crdt_merge.lua \
    "http://127.0.0.1:$port/crdt/merge"
}
off() { serve; measure off; stop; }
on() { serve --api-keys "write:$key" --rate-limit 4000000000 --rate-limit-burst 4000000000; measure on; stop; }

# Which configuration goes first alternates by round, so drift within a
# round falls on both alike; each round gives one paired ratio per workload.
for round in $(seq "$rounds"); do
  if ((round % 2)); then off; on; else on; off; fi
done

python3 - "$results" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    workload, guards, round_, rest = line.split(" ", 3)
    runs.setdefault(workload, {}).setdefault(round_, {})[guards] = float(re.search(r"req_per_s=(\d+)", rest).group(1))
cpu = {}
for line in open(sys.argv[1]):
    workload, guards, round_, rest = line.split(" ", 3)
    cpu.setdefault(workload, {}).setdefault(guards, []).append(float(re.search(r"cpu_us_per_req=([\d.]+)", rest).group(1)))
for workload, rounds in runs.items():
    ratios = sorted(r["on"] / r["off"] for r in rounds.values() if "on" in r and "off" in r)
    off = statistics.mean(r["off"] for r in rounds.values())
    on = statistics.mean(r["on"] for r in rounds.values())
    print(f"{workload}: off {off:,.0f} req/s, on {on:,.0f} req/s (means of {len(ratios)} rounds); "
          f"on/off: ratio of means {on / off:.3f}, median paired ratio {statistics.median(ratios):.3f} "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f}); server CPU per request: off "
          f"{statistics.median(cpu[workload]['off']):.2f} us, on {statistics.median(cpu[workload]['on']):.2f} us (medians)")
PY
rm -f "$results"
