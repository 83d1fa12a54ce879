"""Graceful stop: every KV view written, sockets closed with 1012, exit 0
(under AddressSanitizer, a leak would make the exit code non-zero)."""
import asyncio
import json
import sqlite3

import websockets

from harness import TRACK, Client, Server, run


async def test_sigterm_writes_kv_then_closes_with_1012():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        await a.request({"type": "toggle_step", "trackId": "t1", "step": 9}, "step_toggled")
        await b.request({"type": "set_tempo", "tempo": 128}, "tempo_changed")
        _, _, live = s.http("GET", f"/api/sessions/{sid}")
        stop = asyncio.get_running_loop().run_in_executor(None, s.stop)
        for c in (a, b):
            try:
                while True:
                    await c.recv(15)
            except websockets.exceptions.ConnectionClosed as e:
                assert e.rcvd is not None and e.rcvd.code == 1012, e
        assert await stop == 0, s.read_log()[-2000:]
        log = s.read_log()
        assert log.index("KV view written") < log.rindex("stopped")
        db = sqlite3.connect(f"{s.data_dir}/kv.db")
        kv = json.loads(db.execute("SELECT value FROM kv WHERE id=?", (sid,)).fetchone()[0])
        db.close()
        assert kv["state"] == live["state"]
        s.start()
        _, _, again = s.http("GET", f"/api/sessions/{sid}")
        assert again["state"] == live["state"]
    finally:
        s.cleanup()


async def test_drain_answers_503_on_healthz_and_goes_on_serving():
    """--drain-seconds: from SIGTERM on, /healthz answers 503 "draining" (a load
    balancer takes the node out) while the node goes on serving its players and
    requests; then the usual stop, 1012 and exit 0. A second signal cuts it short."""
    import signal
    import time
    s = Server(args=["--drain-seconds", "3"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        assert s.http("GET", "/healthz")[0] == 200
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.wait_log("draining for 3 s")
        status, _, body = s.http("GET", "/healthz")
        assert status == 503 and body["status"] == "draining", (status, body)
        # Still serving: a toggle is acknowledged, a REST read answers, a new
        # session can be created.
        await a.request({"type": "toggle_step", "trackId": "t1", "step": 3}, "step_toggled")
        status, _, got = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200 and got["state"]["tracks"][0]["steps"][3] is True
        s.create({})
        assert s.proc.poll() is None
        try:
            while True:
                await a.recv(15)
        except websockets.exceptions.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1012, e
        assert time.monotonic() - t0 >= 2.5, "closed before the drain ended"
        assert s.proc.wait(20) == 0, s.read_log()[-2000:]
        # A second signal ends a drain at once: a 60 s drain, over well within
        # that however loaded the machine is.
        args = s.args
        s.args = [("60" if k and args[k - 1] == "--drain-seconds" else a) for k, a in enumerate(args)]
        s.start()
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.wait_log("draining for 60 s")
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(40) == 0
        assert time.monotonic() - t0 < 30, "the second signal did not end the drain"
        s.args = args
        s.start()
        _, _, again = s.http("GET", f"/api/sessions/{sid}")
        assert again["state"]["tracks"][0]["steps"][3] is True
        s.stop()
    finally:
        s.cleanup()


def test_help_and_bad_configuration():
    import subprocess
    from harness import BIN
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "--data-dir" in out.stdout and "GROOVED_PORT" in out.stdout
    bad = subprocess.run([BIN, "--port", "99999"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "port" in bad.stderr and "99999" in bad.stderr
    bad = subprocess.run([BIN, "--nope"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown flag" in bad.stderr
    s = Server(env={"GROOVED_EVICT_AFTER": "7"}).start()
    try:
        assert "evict-after=7" in s.read_log()
    finally:
        s.stop()
        s.cleanup()


if __name__ == "__main__":
    run([test_sigterm_writes_kv_then_closes_with_1012,
         test_drain_answers_503_on_healthz_and_goes_on_serving, test_help_and_bad_configuration])
