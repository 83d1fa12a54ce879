#!/usr/bin/env bash
# Cluster mode against its floor, in one run on this machine (docs/BENCHMARKS.md,
# "Cluster mode: PostgreSQL store"): scripts/cluster up with one grooved node on a
# PostgreSQL primary with a synchronous standby, then
#   1. the floor, with pgbench on the same primary: one-row INSERT transactions from one
#      connection (commit latency p50/p99) and 100-row INSERT transactions from one
#      connection (rows/s) — grooved's commit lane is one connection too;
#   2. grooved in cluster mode: 1 x 1 ack latency, 100 x 2 window 8 throughput, server CPU
#      per mutation (grooved-bench).
# Usage: bench/cluster-pg.sh [seconds-per-run]   (default 10). Needs root (PostgreSQL runs
# as the postgres user) and the test packages (make test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
make build >/dev/null
dir=$(mktemp -d /tmp/grooved-pgbench-XXXXXX)
chmod 755 "$dir"
trap 'scripts/cluster down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
GROOVED_BIN=$PWD/build/grooved GROOVED_NODE_ARGS="--ws-rate 1000000 --create-rate 1000000 --max-conns-per-ip 1000000 --load-rate 1000000 --list-rate 1000000 --fanout-kb 1048576" \
  scripts/cluster up "$dir" --nodes 1 >/dev/null
read -r pport nport npid < <(python3 -c "
import json; c = json.load(open('$dir/cluster.json'))
print(c['postgres']['primary']['port'], c['nodes'][0]['port'], c['nodes'][0]['pid'])")
export PGPASSWORD=grooved
psql="psql -q -h 127.0.0.1 -p $pport -U grooved -d grooved"
$psql -c "CREATE TABLE IF NOT EXISTS floor(id bigserial PRIMARY KEY, v bigint)"
echo "INSERT INTO floor(v) VALUES (1);" > "$dir/one.sql"
echo "INSERT INTO floor(v) SELECT g FROM generate_series(1, 100) g;" > "$dir/hundred.sql"

pct() { sort -n | awk '{v[NR]=$1} END { printf "p50 %.3f ms  p99 %.3f ms (%d transactions)\n",
  v[int(NR*0.5+0.5)]/1000, v[int(NR*0.99+0.5)]/1000, NR }'; }

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== floor: one-row INSERT commits, 1 connection (synchronous standby)"
(cd "$dir" && pgbench -n -h 127.0.0.1 -p "$pport" -U grooved -c 1 -T "$secs" -f one.sql -l \
  --log-prefix=one grooved >/dev/null 2>&1)
cat "$dir"/one.* | awk '{print $3}' | pct
echo "== floor: 100-row INSERT commits, 1 connection"
pgbench -n -h 127.0.0.1 -p "$pport" -U grooved -c 1 -T "$secs" -f "$dir/hundred.sql" grooved \
  2>/dev/null | awk '/^tps/ { printf "  %.0f transactions/s = %.0f rows/s\n", $3, $3 * 100 }'
echo "== grooved cluster mode: latency 1x1"
build/grooved-bench --port "$nport" --sessions 1 --clients 1 --mode latency --duration "$secs" \
  --pid "$npid"
echo "== grooved cluster mode: throughput 100x2 W=8"
build/grooved-bench --port "$nport" --sessions 100 --clients 2 --mode throughput --window 8 \
  --duration "$secs" --pid "$npid"
curl -s "http://127.0.0.1:$nport/metrics" | awk '
  /^grooved_commits_total /{c=$2} /^grooved_ops_per_commit_sum /{o=$2}
  /^grooved_commit_latency_ms_sum /{l=$2}
  END { if (c) printf "  server metrics: %d commits, %.1f ops per commit, %.3f ms mean commit\n", c, o/c, l/c }'
