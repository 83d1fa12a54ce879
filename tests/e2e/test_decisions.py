"""Rows of PROTOCOL-DECISIONS.md not covered elsewhere: #23 trusted proxy,
#28 ghost sockets, #5/#26 the KV view is written only when behind, #33 the
name is durable."""
import asyncio
import base64
import json
import os
import re
import socket
import time

from harness import TRACK, Client, Server, run


def test_forwarded_for_is_believed_only_from_the_trusted_proxy():
    s = Server(args=["--create-rate", "2", "--trusted-proxy", "::ffff:127.0.0.1"]).start()
    try:
        # The proxy appends the client it saw: the right-most entry.
        hdr = lambda ip: {"X-Forwarded-For": f"10.0.0.1, {ip}"}

        assert [s.http("POST", "/api/sessions", {}, hdr("198.51.100.1"))[0] for _ in range(3)] == [201, 201, 429]
        # Another client behind the same proxy has its own bucket.
        assert s.http("POST", "/api/sessions", {}, hdr("198.51.100.2"))[0] == 201
    finally:
        s.cleanup()
    s = Server(args=["--create-rate", "2"]).start()
    try:
        # Without a trusted proxy the header is ignored: one bucket for the socket's peer.
        codes = [s.http("POST", "/api/sessions", {}, {"X-Forwarded-For": f"198.51.100.{i}"})[0] for i in range(3)]
        assert codes == [201, 201, 429], codes
    finally:
        s.cleanup()


async def test_silent_ghost_socket_is_closed_and_its_slot_freed():
    s = Server(args=["--idle-timeout", "6"]).start()
    try:
        sid = s.create()
        watcher = await Client.join(s, sid)
        # A ghost: completes the upgrade, then never reads or answers a ping.
        ghost = socket.create_connection(("127.0.0.1", s.port))
        key = base64.b64encode(os.urandom(16)).decode()
        ghost.sendall((f"GET /api/sessions/{sid}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        joined = await watcher.recv_type("player_joined")
        start = time.time()
        left = await watcher.recv_type("player_left", timeout=20)
        assert left["playerId"] == joined["player"]["id"]
        assert 3 < time.time() - start < 15, time.time() - start
        ghost.close()
        await watcher.close()
    finally:
        s.cleanup()


async def test_kv_view_written_only_when_behind():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        for _ in range(3):  # listeners come and go; nothing changes
            c = await Client.join(s, sid)
            await c.close()
            await asyncio.sleep(0.2)
        writes = re.findall(rf"session {sid}: KV view written", s.read_log())
        assert len(writes) == 1, "an unchanged session must not rewrite its KV view"
        c = await Client.join(s, sid)
        await c.request({"type": "set_tempo", "tempo": 90}, "tempo_changed")
        await c.close()
        s.wait_log(rf"session {sid}: KV view written", count=2)
    finally:
        s.cleanup()


async def test_rename_is_durable_through_the_writer():
    s = Server().start()
    try:
        sid = s.create()
        c = await Client.join(s, sid)
        await c.request({"type": "set_session_name", "name": "Kept"}, "session_name_changed")
        s.kill9()
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["name"] == "Kept"
    finally:
        s.cleanup()


async def test_failed_kv_write_is_retried_with_backoff_and_never_slows_commits():
    """Decision #27: the durable store stays the truth; a failing KV view is
    retried with backoff, counted and logged, and commits go on meanwhile."""
    import sqlite3
    import tempfile
    fault = tempfile.mktemp(prefix="grooved-kvfault-")
    open(fault, "w").close()
    s = Server(env={"GROOVED_KV_FAULT_FILE": fault}).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        await c.request({"type": "set_tempo", "tempo": 111}, "tempo_changed")
        await c.close()
        s.wait_log(rf"session {sid}: KV view write failed \(.*attempt 1\); retrying in 500 ms")
        # Commits are unaffected while the view fails.
        c = await Client.join(s, sid)
        start = time.time()
        for i in range(20):
            await c.request({"type": "toggle_step", "trackId": "t1", "step": i}, "step_toggled")
        assert time.time() - start < 2
        await c.close()
        _, _, metrics = s.http("GET", "/metrics")
        assert int(re.search(r"^grooved_kv_write_failures_total (\d+)$", metrics, re.M).group(1)) >= 1
        os.unlink(fault)  # the view's backend recovers
        s.wait_log(rf"session {sid}: KV view written", timeout=40)
        for _ in range(100):
            db = sqlite3.connect(f"{s.data_dir}/kv.db")
            row = db.execute("SELECT value FROM kv WHERE id=?", (sid,)).fetchone()
            db.close()
            if row and json.loads(row[0])["state"]["tracks"][0]["steps"][19]:
                break
            await asyncio.sleep(0.2)
        assert row and json.loads(row[0])["state"]["tempo"] == 111
        assert json.loads(row[0])["state"]["tracks"][0]["steps"][19] is True
    finally:
        if os.path.exists(fault):
            os.unlink(fault)
        s.cleanup()


if __name__ == "__main__":
    run([test_forwarded_for_is_believed_only_from_the_trusted_proxy,
         test_silent_ghost_socket_is_closed_and_its_slot_freed,
         test_kv_view_written_only_when_behind,
         test_rename_is_durable_through_the_writer,
         test_failed_kv_write_is_retried_with_backoff_and_never_slows_commits])
