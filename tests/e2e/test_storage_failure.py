"""Failed writes are not acknowledged: the batch is not broadcast, senders get
STORAGE_UNAVAILABLE with their clientSeq, REST writes answer 503, the live
state rolls back to what is durable, and service resumes with the disk."""
import asyncio
import os
import tempfile

from harness import TRACK, Client, Server, run


async def test_failed_commit_is_not_acknowledged_and_rolls_back():
    fault = tempfile.mktemp(prefix="grooved-fault-")
    s = Server(env={"GROOVED_FAULT_FILE": fault}).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        await a.request({"type": "toggle_step", "trackId": "t1", "step": 1}, "step_toggled")
        await b.recv_type("step_toggled")
        open(fault, "w").close()  # the disk starts failing
        reply = await a.request({"type": "toggle_step", "trackId": "t1", "step": 2}, "step_toggled")
        assert reply["type"] == "error" and reply["code"] == "STORAGE_UNAVAILABLE", reply
        # Everyone is resynchronised to the durable state; b never saw step 2.
        snap_a = await a.recv_type("snapshot")
        snap_b = await b.recv_type("snapshot")
        for snap in (snap_a, snap_b):
            steps = snap["state"]["tracks"][0]["steps"]
            assert steps[1] is True and steps[2] is False
        st, _, body = s.http("PATCH", f"/api/sessions/{sid}", {"name": "while failing"})
        assert st == 503, (st, body)
        os.unlink(fault)  # the disk is back
        ok = await a.request({"type": "toggle_step", "trackId": "t1", "step": 3}, "step_toggled")
        assert ok["type"] == "step_toggled" and ok["value"] is True
        seen_b = await b.recv_type("step_toggled")
        assert seen_b["step"] == 3, "b must never have seen the failed toggle of step 2"
        s.kill9()
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        steps = body["state"]["tracks"][0]["steps"]
        assert steps[1] and not steps[2] and steps[3]
        assert body["name"] is None
    finally:
        if os.path.exists(fault):
            os.unlink(fault)
        s.cleanup()


if __name__ == "__main__":
    run([test_failed_commit_is_not_acknowledged_and_rolls_back])
