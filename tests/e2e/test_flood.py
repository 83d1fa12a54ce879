"""Floods and slow readers never cost unbounded memory or hurt others: a
reader that falls more than --out-cap-kb behind is disconnected, and a
sender over --ws-rate gets RATE_LIMITED while the session stays intact."""
import asyncio
import base64
import json
import os
import re
import socket

from harness import TRACK, Client, Server, run


async def test_slow_reader_is_cut_off_and_others_are_unaffected():
    s = Server(args=["--out-cap-kb", "256", "--ws-rate", "100000"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        talker = await Client.join(s, sid)
        # A reader that never reads: its kernel buffers fill, then grooved's queue.
        slow = socket.create_connection(("127.0.0.1", s.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        slow.sendall((f"GET /api/sessions/{sid}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        joined = await talker.recv_type("player_joined")
        # Big states replaced over REST (If-Match): each one is a snapshot of
        # about 60 KB to every player, 6 MB offered to a reader that takes none.
        track = dict(TRACK, parameterLocks=[{"pitch": k % 24, "volume": 0.5} for k in range(128)])
        state = {"tracks": [dict(track, id=f"t{k}") for k in range(12)]}

        def replace_states():  # in a thread: the talker keeps reading meanwhile
            for i in range(100):
                _, h, _ = s.http("GET", f"/api/sessions/{sid}")
                st, _, _ = s.http("PUT", f"/api/sessions/{sid}",
                                  {"state": dict(state, tempo=60 + i)}, {"If-Match": h["etag"]})
                assert st == 200
                if "closing slow reader" in s.read_log():
                    return

        putter = asyncio.create_task(asyncio.to_thread(replace_states))
        left = await talker.recv_type("player_left", timeout=60)
        await putter


        assert left["playerId"] == joined["player"]["id"]
        assert re.search(r"output queue over 256 KiB, closing slow reader", s.read_log())
        _, _, metrics = s.http("GET", "/metrics")
        assert "grooved_lagging_closed_total 1" in metrics
        ack = await talker.request({"type": "toggle_step", "trackId": "t1", "step": 1}, "step_toggled")
        assert ack["value"] is True, "the session and its other players are unharmed"
        slow.close()
        await talker.close()
    finally:
        s.cleanup()


async def test_flood_gets_rate_limited_and_session_survives():
    s = Server(args=["--ws-rate", "50"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        for i in range(300):
            await c.send({"type": "toggle_step", "trackId": "t1", "step": i % 128})
        limited = applied = 0
        while limited + applied < 300:
            m = await c.recv()
            if m.get("type") == "error":
                assert m["code"] == "RATE_LIMITED"
                limited += 1
            elif m.get("type") == "step_toggled":
                applied += 1
        assert limited > 0 and applied >= 90, (applied, limited)
        await asyncio.sleep(1.1)  # the bucket refills
        ack = await c.request({"type": "set_tempo", "tempo": 99}, "tempo_changed")
        assert ack["type"] == "tempo_changed"
        _, headers, _ = s.http("GET", f"/api/sessions/{sid}")
        assert int(headers["etag"].strip('"')) == applied + 1
        await c.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_slow_reader_is_cut_off_and_others_are_unaffected,
         test_flood_gets_rate_limited_and_session_survives])
