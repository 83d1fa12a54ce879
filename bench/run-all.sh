#!/usr/bin/env bash
# Reproduces every figure of docs/BENCHMARKS.md: builds the release binaries,
# starts grooved on a fresh data directory for each group of runs, and runs
# grooved-bench against it. Each run is bounded in time; the server is stopped
# at the end. Usage: bench/run-all.sh [seconds-per-run]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
make build >/dev/null
port=8799
bench=./build/grooved-bench
data=$(mktemp -d /tmp/grooved-bench-XXXXXX)
pid=

start() {
  rm -rf "$data"; mkdir -p "$data"
  # The load generator is one client address opening thousands of connections
  # and sending at full speed: lift every per-client limit.
  ./build/grooved --port $port --data-dir "$data" --ws-rate 1000000 --create-rate 1000000 \
    --max-conns-per-ip 1000000 --load-rate 1000000 --list-rate 1000000 --fanout-kb 1048576 \
    --log-level warn "$@" 2>"$data.log" &

  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.05; done
  echo "grooved did not start" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT

metrics() {
  curl -s "http://127.0.0.1:$port/metrics" | awk '
    /^grooved_commits_total /{c=$2} /^grooved_ops_per_commit_sum /{o=$2}
    /^grooved_commit_latency_ms_sum /{l=$2}
    END { if (c) printf "  server metrics: %d commits, %.1f ops per commit, %.3f ms mean commit\n", c, o/c, l/c }'
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== fsync: data dir on $(df -T /tmp | awk 'NR==2{print $2}')"

start
echo "== latency 1x1";  $bench --port $port --sessions 1 --clients 1 --mode latency --duration "$secs" --pid $pid
echo "== latency 1x5";  $bench --port $port --sessions 1 --clients 5 --mode latency --duration "$secs" --pid $pid
metrics; stop

start
echo "== throughput 20x5 W=8";   $bench --port $port --sessions 20 --clients 5 --mode throughput --window 8 --duration "$secs" --pid $pid
metrics; stop
start
echo "== throughput 100x2 W=8";  $bench --port $port --sessions 100 --clients 2 --mode throughput --window 8 --duration "$secs" --pid $pid
metrics; stop
start
echo "== throughput 1000x2 W=4"; $bench --port $port --sessions 1000 --clients 2 --mode throughput --window 4 --duration "$secs" --pid $pid
metrics; stop

start
echo "== idle 1000x10 (10,000 connections)"; $bench --port $port --sessions 1000 --clients 10 --mode idle --duration 3 --pid $pid
stop

start --evict-after 2 --log-level info
echo "== cold wake: 500 sessions of 16 tracks, evicted, then GET"; $bench --port $port --sessions 500 --mode wake --duration 5
# The server's own measure of each cold load (storage queue + checkpoint read + parse + replay).
grep -o 'replayed, [0-9.]* ms' "$data.log" | awk '{print $2}' | sort -n | awk '
  {v[NR]=$1} END { if (NR) printf "  server-side load ms: p50 %.3f  p99 %.3f  max %.3f (%d loads)\n",
  v[int(NR*0.5+0.5)], v[int(NR*0.99+0.5)], v[NR], NR }'
stop
