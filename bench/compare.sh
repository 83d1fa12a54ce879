#!/usr/bin/env bash
# Side by side: two grooved binaries (e.g. an older commit's and today's),
# the same load generator, the same configurations, alternating A and B for
# each configuration so that drift in the machine's load hits both alike.
#   bench/compare.sh OLD_BIN NEW_BIN [seconds-per-run] [rounds] [configurations]
# configurations: a regular expression on the names below (default: all).
# Build an older commit's binary with, e.g.:
#   git worktree add /tmp/old a70f4f8 && make -C /tmp/old build
# Per-client limits are lifted on both (flags the older binary lacks are left
# out for it). Prints grooved-bench's summary line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 secs=${3:-10} rounds=${4:-2} only=${5:-.}
make build >/dev/null
bench=./build/grooved-bench
port=8798
data=$(mktemp -d /tmp/grooved-compare-XXXXXX)
pid=
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT

start() {
  local bin=$1
  rm -rf "$data"; mkdir -p "$data"
  local args=(--port $port --data-dir "$data" --log-level warn --ws-rate 1000000 --create-rate 1000000)
  # (--help is read whole first: with pipefail, grep -q closing the pipe early
  # would make a flag look missing.)
  local help; help=$("$bin" --help 2>&1)
  for f in max-conns-per-ip load-rate list-rate; do
    grep -q -- "--$f " <<<"$help" && args+=("--$f" 1000000)
  done
  grep -q -- "--fanout-kb " <<<"$help" && args+=(--fanout-kb 1048576)
  "$bin" "${args[@]}" 2>"$data.log" &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.05; done
  echo "grooved did not start: $(cat "$data.log")" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }

run() { # name bench-args...
  local name=$1; shift
  grep -Eq -- "$only" <<<"$name" || return 0
  for r in $(seq "$rounds"); do
    for which in old new; do
      local bin=$old; [ $which = new ] && bin=$new
      start "$bin"
      printf '%-22s %-3s round %d: ' "$name" "$which" "$r"
      $bench --port $port --duration "$secs" --pid $pid "$@" 2>&1 | grep -E 'acknowledged|ack latency|server:|failed connections' | sed 's/^ *//' | tr '\n' ' '
      echo
      stop
    done
  done
}

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); old=$old new=$new"
run "latency 1x1" --sessions 1 --clients 1 --mode latency
run "throughput 100x2 W8" --sessions 100 --clients 2 --mode throughput --window 8
run "throughput 1000x2 W4" --sessions 1000 --clients 2 --mode throughput --window 4
