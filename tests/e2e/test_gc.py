"""Decision #24: no delete route, but an operator command removes sessions
not accessed for N days; and one data directory serves one process."""
import json
import sqlite3
import subprocess
import time
import uuid

from harness import BIN, Server, run


def gc(data_dir, *args):
    return subprocess.run([BIN, "gc", "--data-dir", data_dir, *args], capture_output=True,
                          text=True, timeout=30)


def test_gc_removes_only_sessions_not_accessed_for_n_days():
    s = Server().start()
    try:
        old, fresh = s.create(), s.create()
        kv_only_old = str(uuid.uuid4())
        assert s.http("GET", f"/api/sessions/{fresh}")[0] == 200
        busy = gc(s.data_dir, "--older-than-days", "30")
        assert busy.returncode == 1 and "stop grooved first" in busy.stderr, busy
        second = subprocess.run([BIN, "--port", "0", "--data-dir", s.data_dir],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "in use by another grooved" in second.stderr
        assert s.stop() == 0
        db = sqlite3.connect(f"{s.data_dir}/durable.db")
        forty_days_ago = int(time.time() * 1000) - 40 * 86400000
        db.execute("UPDATE sessions SET record = json_set(record, '$.lastAccessedAt', ?) "
                   "WHERE id = ?", (forty_days_ago, old))
        db.commit()
        db.close()
        db = sqlite3.connect(f"{s.data_dir}/kv.db")
        rec = {"id": kv_only_old, "name": None, "createdAt": 1, "updatedAt": 1,
               "lastAccessedAt": forty_days_ago, "remixedFrom": None, "remixedFromName": None,
               "remixCount": 0, "immutable": False,
               "state": {"tracks": [], "tempo": 120, "swing": 0, "version": 1}}
        db.execute("INSERT INTO kv(id, updated_at, value) VALUES(?, 1, ?)", (kv_only_old, json.dumps(rec)))
        db.commit()
        db.close()
        dry = gc(s.data_dir, "--older-than-days", "30", "--dry-run")
        assert dry.returncode == 0 and f"would remove {old}" in dry.stdout, dry
        done = gc(s.data_dir, "--older-than-days", "30")
        assert done.returncode == 0 and f"removed {old}" in done.stdout
        assert f"removed {kv_only_old}" in done.stdout
        assert "removed 2 sessions" in done.stdout, done.stdout
        s.start()
        assert s.http("GET", f"/api/sessions/{old}")[0] == 404
        assert s.http("GET", f"/api/sessions/{fresh}")[0] == 200
        db = sqlite3.connect(f"{s.data_dir}/kv.db")
        assert db.execute("SELECT count(*) FROM kv WHERE id = ?", (old,)).fetchone()[0] == 0
        db.close()
        assert gc(s.data_dir, "--older-than-days", "0").returncode == 2
    finally:
        s.cleanup()


def test_access_time_reaches_the_disk():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        sid = s.create()
        s.wait_log(rf"session {sid}: evicted")
        time.sleep(0.05)
        before = int(time.time() * 1000)
        assert s.http("GET", f"/api/sessions/{sid}")[0] == 200
        s.wait_log(rf"session {sid}: evicted", count=2)
        db = sqlite3.connect(f"{s.data_dir}/durable.db")
        rec = json.loads(db.execute("SELECT record FROM sessions WHERE id=?", (sid,)).fetchone()[0])
        db.close()
        assert rec["lastAccessedAt"] >= before, (rec["lastAccessedAt"], before)
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_gc_removes_only_sessions_not_accessed_for_n_days, test_access_time_reaches_the_disk])
