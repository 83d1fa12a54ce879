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
    run([test_sigterm_writes_kv_then_closes_with_1012, test_help_and_bad_configuration])
