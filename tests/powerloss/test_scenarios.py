"""Power-cut scenarios that the random loop (powerloss.py) reaches rarely or
never, each cut at a chosen instant on lossyfs: grooved's first moments in
a data directory it has just created."""
import asyncio
import shutil
import sys
import tempfile

from harness import Client, Server, run
from lossy import Mount, require_fuse

TRACK = {"id": "a", "name": "A", "sampleId": "kick", "steps": []}


class Rig:
    """A backing directory, a lossyfs mount of it, and grooved on data/."""

    def __init__(self):
        self.backing = tempfile.mkdtemp(prefix="powerloss-scenario-")
        self.mount = None
        self.server = None

    def boot(self):
        self.mount = Mount(self.backing).mount()
        self.server = Server(data_dir=self.mount.path("data"))
        return self

    def start(self):
        self.server.start()
        return self.server

    def power_cut(self):
        """Cuts the power and SIGKILLs grooved in the same instant, then
        reboots (unmount, mount again)."""
        self.mount.cut(kill=self.server.proc.pid)
        self.server.proc.wait(10)
        self.halt()
        self.boot()

    def halt(self):
        if self.server:
            self.server.cleanup()
        if self.mount:
            self.mount.unmount()

    def close(self):
        try:
            self.halt()
        finally:
            shutil.rmtree(self.backing, ignore_errors=True)


async def toggles(server, sid, n):
    c = await Client.join(server, sid)
    last = None
    for i in range(n):
        ack = await c.request({"type": "toggle_step", "trackId": "a", "step": i}, "step_toggled")
        assert ack["type"] == "step_toggled", ack
        last = ack["seq"]
    await c.close()
    return last


def check_after_cut(rig, sid, n):
    s = rig.start()
    status, headers, body = s.http("GET", f"/api/sessions/{sid}")
    assert status == 200, f"the session's creation was acknowledged, yet GET answers {status}"
    steps = body["state"]["tracks"][0]["steps"]
    assert int(headers["etag"].strip('"')) >= n, f"acknowledged ops lost: serverSeq {headers['etag']}"
    assert steps[:n] == [True] * n, "acknowledged toggles lost"


async def test_fresh_data_directory_survives_a_cut_right_after_its_first_ops():
    """grooved creates data/ itself: its name in the parent directory must be
    durable before anything in it is acknowledged."""
    rig = Rig().boot()
    try:
        s = rig.start()
        sid = s.create({"state": {"tracks": [TRACK]}})
        await toggles(s, sid, 5)
        rig.power_cut()
        check_after_cut(rig, sid, 5)
    finally:
        rig.close()


if __name__ == "__main__":
    try:
        require_fuse()
    except Exception as e:  # CI has FUSE: its absence is a failure, said loudly
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    run([test_fresh_data_directory_survives_a_cut_right_after_its_first_ops])
