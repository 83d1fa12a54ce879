"""A memory budget evicts the least recently used sessions first, as soon as
it is exceeded (not at the next tick), counting what sessions really hold,
and an evicted session comes back unchanged."""
import re

from harness import TRACK, Server, metric, run

BIG = {"state": {"tracks": [dict(TRACK, id=f"t{i}") for i in range(16)]}}


def test_budget_evicts_least_recently_used_first():
    # A 16-track session holds about 22 KB: 2 MiB keeps about 95 of them.
    s = Server(args=["--memory-budget-mb", "2", "--evict-after", "3600", "--create-rate", "1000"]).start()
    try:
        ids = [s.create(BIG) for _ in range(40)]
        # Use the first ten again: now they are the most recently used.
        for sid in ids[:10]:
            assert s.http("GET", f"/api/sessions/{sid}")[0] == 200
        ids += [s.create(BIG) for _ in range(80)]
        s.wait_log(r"evicted \(memory budget", timeout=10)
        for _ in range(50):
            if metric(s, "grooved_memory_estimate_bytes") <= 2 * 1024 * 1024:
                break
            s.wait_log(r"evicted \(memory budget", timeout=2)
        assert metric(s, "grooved_memory_estimate_bytes") <= 2 * 1024 * 1024
        evicted = set(re.findall(r"session (\S+): evicted \(memory budget", s.read_log()))
        assert len(evicted) >= 20, len(evicted)
        assert not evicted & set(ids[:10]), "recently used sessions must stay"
        assert not evicted & set(ids[40:]), "the newest sessions must stay"
        assert ids[10] in evicted, "the least recently used goes first"
        st, _, body = s.http("GET", f"/api/sessions/{ids[10]}")
        assert st == 200 and len(body["state"]["tracks"]) == 16
        assert metric(s, "grooved_budget_evictions_total") >= 20
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_budget_evicts_least_recently_used_first])
