"""grooved-bench against the real server: it creates sessions, gets every
snapshot, measures acknowledged mutations, stops by itself, and the server's
/metrics agree with what it reports."""
import json
import os
import re
import subprocess

from harness import BIN, Server, run

BENCH = os.path.join(os.path.dirname(BIN), "grooved-bench")


def test_bench_reports_acknowledged_mutations_and_stops_by_itself():
    s = Server(args=["--ws-rate", "1000000", "--create-rate", "1000000",
                     "--max-conns-per-ip", "1000000", "--fanout-kb", "1048576"]).start()
    try:
        out = subprocess.run([BENCH, "--port", str(s.port), "--sessions", "3", "--clients", "2",
                              "--mode", "throughput", "--window", "4", "--duration", "2",
                              "--ops", "200", "--pid", str(s.proc.pid), "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        r = json.loads(out.stdout)
        assert r["acked"] == 6 * 200, r  # every client stopped at --ops
        assert r["errors"] == 0 and r["failed_connections"] == 0
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
        assert r["broadcasts_per_s"] > r["acked_per_s"], "each toggle reaches both players"
        assert r["server_cpu_s"] > 0 and r["server_rss_kb"] > 0
        _, _, metrics = s.http("GET", "/metrics")
        toggles = int(re.search(r'grooved_mutations_total\{type="toggle_step"\} (\d+)', metrics).group(1))
        assert toggles == 1200
        rows = int(re.search(r"^grooved_durable_rows_total (\d+)$", metrics, re.M).group(1))
        assert rows >= 1200
        bad = subprocess.run([BENCH, "--clients", "11"], capture_output=True, text=True, timeout=10)
        assert bad.returncode == 2 and "usage" in bad.stderr
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_bench_reports_acknowledged_mutations_and_stops_by_itself])
