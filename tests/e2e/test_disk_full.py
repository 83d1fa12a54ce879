"""A real full disk: the data directory is a 3 MiB tmpfs. Commits fail with
ENOSPC, nothing of them is acknowledged, the server keeps serving what is
durable, and it resumes when space comes back. Needs root for the mount;
elsewhere test_storage_failure.py covers the same paths by fault injection."""
import asyncio
import os
import subprocess
import tempfile

from harness import TRACK, Client, Server, Skip, run

BIG = {"state": {"tracks": [dict(TRACK, id=f"t{i}", steps=[True] * 128) for i in range(16)]}}


async def test_disk_full_fails_commits_cleanly_and_recovers():
    mnt = tempfile.mkdtemp(prefix="grooved-tmpfs-")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        os.rmdir(mnt)
        raise Skip("cannot mount a tmpfs here (not root); fault injection covers this path")
    s = None
    try:
        ballast = os.path.join(mnt, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (1024 * 1024))
        s = Server(data_dir=os.path.join(mnt, "data")).start()
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        ok = await a.request({"type": "toggle_step", "trackId": "t1", "step": 1}, "step_toggled")
        assert ok["type"] == "step_toggled"
        statuses = []
        for _ in range(400):
            st, _, body = s.http("POST", "/api/sessions", BIG)
            statuses.append(st)
            if st != 201:
                break
        assert statuses[-1] == 503 and statuses[0] == 201, statuses[-3:]
        # Take every byte that is left, then ask for a write larger than any
        # space SQLite could reuse (the failed transaction's WAL frames).
        try:
            with open(os.path.join(mnt, "ballast2"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        huge = dict(TRACK, id="huge", parameterLocks=[{"pitch": 1, "volume": 0.5, "note": "n" * 150}] * 128)
        reply = await a.request({"type": "add_track", "track": huge}, "track_added")
        assert reply["type"] == "error" and reply["code"] == "STORAGE_UNAVAILABLE", reply
        st, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert st == 200 and [t["id"] for t in body["state"]["tracks"]] == ["t1"]
        assert body["state"]["tracks"][0]["steps"][1] is True
        assert s.http("GET", "/healthz")[0] == 200
        os.unlink(ballast)  # space comes back
        os.unlink(os.path.join(mnt, "ballast2"))
        await a.recv_type("snapshot")  # resynchronised after the rollback
        ok = await a.request({"type": "add_track", "track": huge}, "track_added")
        assert ok["type"] == "track_added", ok
        ok = await a.request({"type": "toggle_step", "trackId": "t1", "step": 3}, "step_toggled")
        assert ok["type"] == "step_toggled" and ok["value"] is True, ok
        assert s.http("POST", "/api/sessions", {})[0] == 201
        await a.close()
        s.kill9()
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert [t["id"] for t in body["state"]["tracks"]] == ["t1", "huge"]
        steps = body["state"]["tracks"][0]["steps"]
        assert steps[1] and steps[3]
    finally:
        if s:
            s.cleanup()
        subprocess.run(["umount", mnt], capture_output=True)
        os.rmdir(mnt)


if __name__ == "__main__":
    run([test_disk_full_fails_commits_cleanly_and_recovers])
