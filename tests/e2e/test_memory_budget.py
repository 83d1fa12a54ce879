"""A memory budget evicts the least recently used sessions first, and an
evicted session comes back unchanged."""
import re

from harness import TRACK, Server, run

BIG = {"state": {"tracks": [dict(TRACK, id=f"t{i}") for i in range(16)]}}


def metric(s, name):
    _, _, text = s.http("GET", "/metrics")
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))


def test_budget_evicts_least_recently_used_first():
    s = Server(args=["--memory-budget-mb", "1", "--evict-after", "3600", "--create-rate", "1000"]).start()
    try:
        ids = [s.create(BIG) for _ in range(120)]
        # Touch the first ten again: now they are the most recently used.
        for sid in ids[:10]:
            assert s.http("GET", f"/api/sessions/{sid}")[0] == 200
        s.wait_log(r"evicted \(memory budget", timeout=10)
        for _ in range(50):
            if metric(s, "grooved_memory_estimate_bytes") <= 1024 * 1024:
                break
            s.wait_log(r"evicted \(memory budget", timeout=2)
        log = s.read_log()
        evicted = set(re.findall(r"session (\S+): evicted \(memory budget", log))
        assert len(evicted) >= 40, len(evicted)
        assert not evicted & set(ids[:10]), "recently used sessions must stay"
        assert ids[10] in evicted, "the least recently used goes first"
        st, _, body = s.http("GET", f"/api/sessions/{ids[10]}")
        assert st == 200 and len(body["state"]["tracks"]) == 16
        assert metric(s, "grooved_budget_evictions_total") >= 40
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_budget_evicts_least_recently_used_first])
