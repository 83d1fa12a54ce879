#!/usr/bin/env python3
"""Memory under a flood of heavy creates (issue 10, item 5): starts grooved
with --memory-budget-mb BUDGET (and the create limit lifted), creates N
sessions of 16 tracks × 128 steps with a parameter lock on every step (a
45 KB body each) from four threads, and reports the server's RSS before,
at its peak and at the end, with its own estimate of what sessions hold.

  bench/memory-flood.py [BIN] [N] [BUDGET_MB]     (default build/grooved 1500 16)
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/e2e"))
os.environ.setdefault("GROOVED_BIN", sys.argv[1] if len(sys.argv) > 1 else "build/grooved")
from harness import Server, metric, rss_bytes  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
BUDGET = sys.argv[3] if len(sys.argv) > 3 else "16"


def heavy(i):
    tracks = [{"id": f"t{t}", "name": f"Track {t}", "sampleId": "kick", "steps": [True] * 128,
               "parameterLocks": [{"pitch": (k % 48) - 24} for k in range(128)], "stepCount": 128}
              for t in range(16)]
    return {"name": f"heavy {i}", "state": {"tracks": tracks, "tempo": 120}}


def main():
    print(f"body {len(json.dumps(heavy(0)))} bytes, {N} creates, --memory-budget-mb {BUDGET}")
    # AddressSanitizer builds: keep its quarantine of freed memory small.
    s = Server(args=["--memory-budget-mb", BUDGET, "--create-rate", "1000000",
                     "--evict-after", "3600"],
               env={"ASAN_OPTIONS": "quarantine_size_mb=8:detect_leaks=0"}).start()
    try:
        base = rss_bytes(s.proc.pid)

        def worker(k):
            for i in range(k, N, 4):
                st, _, b = s.http("POST", "/api/sessions", heavy(i))
                assert st == 201, (st, b)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        t0 = time.time()
        for t in threads:
            t.start()
        peak = base
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_bytes(s.proc.pid))
            time.sleep(0.1)
        for t in threads:
            t.join()
        took = time.time() - t0
        time.sleep(2)
        end = rss_bytes(s.proc.pid)
        peak = max(peak, end)
        est = metric(s, "grooved_memory_estimate_bytes")
        _, _, health = s.http("GET", "/healthz")
        print(f"created {N} in {took:.1f} s; RSS: start {base / 2**20:.1f} MiB, "
              f"peak {peak / 2**20:.1f} MiB, end {end / 2**20:.1f} MiB; "
              f"estimate {est / 2**20:.1f} MiB for {health['sessionsInMemory']} sessions in memory")
    finally:
        s.cleanup()


if __name__ == "__main__":
    main()
