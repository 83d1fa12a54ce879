"""Power-cut scenarios that the random loop (powerloss.py) reaches rarely or
never, each cut at a chosen instant on lossyfs: grooved's first moments in
a data directory it has just created, and in one restored from a backup of
its database files alone (no op log yet)."""
import asyncio
import os
import shutil
import sys
import tempfile

from harness import Client, Server, run
from lossy import Mount, fsync_path, require_fuse

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
    """n acknowledged toggles; the player stays connected (the power fails
    while people play, before a last leave writes anything else)."""
    c = await Client.join(server, sid)
    for i in range(n):
        ack = await c.request({"type": "toggle_step", "trackId": "a", "step": i}, "step_toggled")
        assert ack["type"] == "step_toggled", ack
    return c


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
        player = await toggles(s, sid, 5)
        rig.power_cut()
        await player.ws.close()
        check_after_cut(rig, sid, 5)
    finally:
        rig.close()


async def test_restored_checkpoints_without_op_log_survive_a_cut_after_the_first_ops():
    """A data directory restored from a backup of its two database files
    (after a graceful stop every op is folded into a checkpoint, so that
    backup is complete): grooved creates log/ at startup, and the first acknowledged
    ops go to a segment in it before anything else syncs the data
    directory. log/'s own name must be durable before they are acknowledged."""
    rig = Rig().boot()
    try:
        s = rig.start()
        sid = s.create({"state": {"tracks": [TRACK]}})
        assert s.stop() == 0
        shutil.rmtree(rig.mount.path("data/log"))
        for f in os.listdir(rig.mount.path("data")):
            if f not in ("durable.db", "kv.db"):
                os.unlink(rig.mount.path("data", f))
        fsync_path(rig.mount.path("data"))
        rig.mount.ctl("sync")  # the restore is complete and durable
        s = rig.start()
        player = await toggles(s, sid, 5)
        rig.power_cut()
        await player.ws.close()
        check_after_cut(rig, sid, 5)
    finally:
        rig.close()


if __name__ == "__main__":
    try:
        require_fuse()
    except Exception as e:  # CI has FUSE: its absence is a failure, said loudly
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    run([test_fresh_data_directory_survives_a_cut_right_after_its_first_ops,
         test_restored_checkpoints_without_op_log_survive_a_cut_after_the_first_ops])
