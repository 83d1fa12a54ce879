#!/usr/bin/env bash
# 1 node vs 3 nodes behind HAProxy, side by side in one run on this machine
# (docs/BENCHMARKS.md, "1 node vs 3 nodes behind HAProxy"):
#   1. scripts/cluster up --nodes 1: grooved-bench 1 x 1 (ack latency) and 100 x 2 window 8
#      (throughput), each straight to the node and then through HAProxy;
#   2. scripts/cluster down; scripts/cluster up --nodes 3: the same two through HAProxy
#      (sessions hash over the three nodes);
#   3. bench/cluster-reconnect.py on that cluster: 30 sessions x 2 players, kill -9 of the
#      node serving the most sessions, K times (the node restarted in between).
# For every run grooved-bench reads utime+stime from /proc/PID/stat over its measured
# window for the nodes (summed) and, separately, for HAProxy. Prints one table.
# Usage: bench/cluster-balancer.sh [seconds-per-run] [kills]   (defaults 10 and 5). Needs
# root (PostgreSQL runs as the postgres user) and the test packages (make test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
kills=${2:-5}
make build >/dev/null
dir=$(mktemp -d /tmp/grooved-balbench-XXXXXX)
chmod 755 "$dir"
trap 'scripts/cluster down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
# The load generator is one address (127.0.0.1): lift the per-client limits.
node_args="--ws-rate 1000000 --create-rate 1000000 --max-conns-per-ip 1000000 --load-rate 1000000 --list-rate 1000000 --fanout-kb 1048576"
results=$dir/results.jsonl

cluster_field() {  # a value from cluster.json, by a Python expression on c
  /usr/bin/python3 -c "import json; c = json.load(open('$dir/cluster.json')); print($1)"
}

commit_metrics() {  # the nodes' commits, ops committed and commit ms, summed
  local url
  for url in $(cluster_field "' '.join(n['url'] for n in c['nodes'])"); do
    curl -s "$url/metrics"
  done | awk '/^grooved_commits_total /{c+=$2} /^grooved_ops_per_commit_sum /{o+=$2}
    /^grooved_commit_latency_ms_sum /{l+=$2} END { printf "%d %d %.3f\n", c, o, l }'
}

# bench CONFIG PORT SCENARIO-ARGS...: one grooved-bench run, its JSON line kept.
bench() {
  local config=$1 port=$2 scenario=$3
  shift 3
  local pids
  pids=$(cluster_field "' '.join('--pid %d' % n['pid'] for n in c['nodes'])")
  # PostgreSQL (both postmasters and every process titled with their cluster_name:
  # the nodes' backends, walsender/walreceiver, walwriter...) and Redis: "other".
  pids="$pids $(/usr/bin/python3 -c "
import json, os
c = json.load(open('$dir/cluster.json'))
names = [c['postgres'][k]['name'] for k in ('primary', 'standby')]
dirs = [c['postgres'][k]['datadir'] for k in ('primary', 'standby')]
out = [c['redis']['pid']]
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()
    except OSError:
        continue
    if any(cmd.startswith(f'postgres: {n}: ') for n in names) or \\
            any(f' -D {d}' in cmd for d in dirs):
        out.append(int(pid))
print(' '.join(f'--other-pid {p}' for p in out))")"
  local m0 m1
  m0=$(commit_metrics)
  # shellcheck disable=SC2086
  build/grooved-bench --port "$port" --duration "$secs" $pids \
    --proxy-pid "$(cluster_field "c['haproxy']['pid']")" --json "$@" >"$dir/run.json"
  m1=$(commit_metrics)
  # The nodes' commits over the whole invocation (setup's creates included).
  /usr/bin/python3 -c "import json; r = json.load(open('$dir/run.json'))
a, b = [int(float(x)) for x in '$m0'.split()[:2]], [int(float(x)) for x in '$m1'.split()[:2]]
ms = float('$m1'.split()[2]) - float('$m0'.split()[2])
c, o = b[0] - a[0], b[1] - a[1]
r.update(config='$config', scenario='$scenario', commits=c,
         ops_per_commit=o / c if c else 0, commit_ms_mean=ms / c if c else 0)
print(json.dumps(r))" >>"$results"
  tail -n1 "$results" | /usr/bin/python3 -c "import json, sys; r = json.loads(sys.stdin.read())
print(f\"  {r['config']}, {r['scenario']}: {r['acked_per_s']:.0f} acked/s\", flush=True)"
}

workload() {  # workload CONFIG PORT
  bench "$1" "$2" "1x1" --sessions 1 --clients 1 --mode latency
  bench "$1" "$2" "100x2 W=8" --sessions 100 --clients 2 --mode throughput --window 8
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== load before: $(uptime)"
echo "== 1 node"
scripts/cluster up "$dir" --nodes 1 --node-args "$node_args" >/dev/null
node_port=$(cluster_field "c['nodes'][0]['port']")
lb_port=$(cluster_field "c['url'].rsplit(':', 1)[1]")
bench "1 node, direct" "$node_port" "1x1" --sessions 1 --clients 1 --mode latency
bench "1 node, HAProxy" "$lb_port" "1x1" --sessions 1 --clients 1 --mode latency
bench "1 node, direct" "$node_port" "100x2 W=8" --sessions 100 --clients 2 --mode throughput \
  --window 8
bench "1 node, HAProxy" "$lb_port" "100x2 W=8" --sessions 100 --clients 2 --mode throughput \
  --window 8
scripts/cluster down "$dir" >/dev/null
echo "== 3 nodes"
scripts/cluster up "$dir" --nodes 3 --node-args "$node_args" >/dev/null
lb_port=$(cluster_field "c['url'].rsplit(':', 1)[1]")
workload "3 nodes, HAProxy" "$lb_port"
echo "== 3 nodes: kill -9 under load, $kills times"
rc=0
bench/cluster-reconnect.py "$dir" --kills "$kills" --json-out "$dir/reconnect.json" || rc=$?
echo "== load after: $(uptime)"

/usr/bin/python3 - "$results" "$dir/reconnect.json" <<'EOF'
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print()
print("| configuration | scenario | acked/s | ack p50 ms | ack p99 ms | nodes' CPU | HAProxy CPU | PostgreSQL + Redis | load generator | machine busy (other work) | commits (ops each, mean ms) | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in sorted(rows, key=lambda r: (r["scenario"] != "1x1", r["config"])):
    s = r["seconds"]
    print(f"| {r['config']} | {r['scenario']} | {r['acked_per_s']:,.0f} | "
          f"{r['latency_ms']['p50']:.3f} | {r['latency_ms']['p99']:.3f} | "
          f"{100 * r['server_cpu_s'] / s:.0f} % ({r['server_cpu_us_per_mutation']:.1f} µs/op) | "
          f"{100 * r['proxy_cpu_s'] / s:.1f} % ({r['proxy_cpu_us_per_mutation']:.1f} µs/op) | "
          f"{100 * r['others_cpu_s'] / s:.0f} % | {100 * r['bench_cpu_s'] / s:.0f} % | "
          f"{100 * r['machine_busy_cpu_s'] / s:.0f} % of 200 % "
          f"({100 * (r['machine_busy_cpu_s'] - r['server_cpu_s'] - r['proxy_cpu_s'] - r['others_cpu_s'] - r['bench_cpu_s']) / s:.0f} %) | "
          f"{r['commits']:,} ({r['ops_per_commit']:.1f}, {r['commit_ms_mean']:.2f} ms) | "
          f"{r['errors']}+{r['failed_connections']} |")
if os.path.exists(sys.argv[2]):
    r = json.load(open(sys.argv[2]))
    print()
    print(f"| 3 nodes, kill -9 x {r['kills']} under {r['sessions']} x 2 | min | p50 | p99 | max | players |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for k, what in (("ready_s", "kill to new snapshot"), ("editing_s", "kill to first ack")):
        s = r[k]
        print(f"| {what} | {s['min'] * 1000:.0f} ms | {s['p50'] * 1000:.0f} ms | "
              f"{s['p99'] * 1000:.0f} ms | {s['max'] * 1000:.0f} ms | {s['n']} |")
    print(f"\nacknowledged toggles lost: {r['lost_acks']}; unaffected players disturbed: "
          f"{r['unaffected_disturbed']}; killed: {', '.join(r['victims'])}")
    for x in r["slow"]:
        print(f"slow to edit again: {x}")
EOF
exit "$rc"
