"""Hostile WebSocket players (issue 10): frames sent with the upgrade are
handled like later ones, unmasked frames close with 1002, relayed fields are
validated and bounded, a flooder is slowed while the players it floods stay,
pings are rate-limited and coalesced, and every refusal of a message that
had a seq carries its clientSeq."""
import asyncio
import json
import socket
import time

from harness import TRACK, Client, Server, metric, rss_bytes, run
from wsraw import RawWS, frame


def toggles(n, first_seq=1):
    return b"".join(frame(json.dumps({"type": "toggle_step", "trackId": "t1", "step": i,
                                      "seq": first_seq + i})) for i in range(n))


def expect_acks(ws, n, first_seq=1):
    snap = ws.read_json("snapshot")
    assert snap["playerId"]
    got = []
    while len(got) < n:
        m = ws.read_json()
        assert m["type"] == "step_toggled", m
        got.append(m["clientSeq"])
    assert got == list(range(first_seq, first_seq + n)), got


def test_frames_sent_with_the_upgrade_are_handled_like_later_ones():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        # The session is in memory: five, then twenty toggles behind the upgrade.
        ws = RawWS.connect(s.port, sid, toggles(5))
        expect_acks(ws, 5)
        ws.close()
        ws = RawWS.connect(s.port, sid, toggles(20, first_seq=6))
        expect_acks(ws, 20, first_seq=6)
        ws.close()
        # Not in memory: the frames wait while it loads, then all apply.
        s.stop()
        s.start()
        ws = RawWS.connect(s.port, sid, toggles(20, first_seq=26))
        expect_acks(ws, 20, first_seq=26)
        ws.close()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        # steps 0..4 toggled three times, 5..19 twice: 0..4 on, 5..19 off
        steps = body["state"]["tracks"][0]["steps"]
        assert steps[:5] == [True] * 5 and not any(steps[5:20]), steps[:20]
    finally:
        s.cleanup()


def test_unmasked_client_frame_closes_with_1002():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        ws = RawWS.connect(s.port, sid)
        ws.read_json("snapshot")
        ws.sock.sendall(frame(json.dumps({"type": "toggle_step", "trackId": "t1", "step": 1}),
                              mask=False))
        deadline = time.time() + 10
        while time.time() < deadline:
            op, payload = ws.read_frame()
            if op == 8:
                break
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1002, (op, payload)
        ws.close()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tracks"][0]["steps"][1] is False, "the unmasked frame was ignored"
        assert metric(s, "grooved_ws_protocol_errors_total") == 1
    finally:
        s.cleanup()


async def test_relayed_fields_are_validated_and_bounded():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        for bad in ({"position": "x" * 65000}, {"position": {"x": "1", "y": 2}},
                    {"position": {"x": 1}}, {"position": None}, {},
                    {"position": {"x": 1, "y": 2, "trackId": "t" * 300}},
                    {"position": {"x": 1, "y": 2, "step": 1.5}}):
            m = await a.request(dict(bad, type="cursor_move"), "cursor_moved")
            assert m["type"] == "error" and m["code"] == "INVALID_FIELD", (bad, m)
        await b.expect_nothing(0.3)
        # Extra keys are not relayed: what others receive is bounded.
        await a.send({"type": "cursor_move", "position": {"x": 1, "y": 2.5, "pad": "p" * 60000}})
        moved = await b.recv_type("cursor_moved")
        assert moved["position"] == {"x": 1, "y": 2.5}, moved
        await a.send({"type": "cursor_move", "position": {"x": 3, "y": 4, "trackId": "t1", "step": 7}})
        moved = await b.recv_type("cursor_moved")
        assert moved["position"] == {"x": 3, "y": 4, "trackId": "t1", "step": 7}
        m = await a.request({"type": "clock_sync_request", "clientTime": "x" * 1000}, "x")
        assert m["code"] == "INVALID_FIELD", m
        # seq is echoed to every player: it must be a number.
        await a.ws.send(json.dumps({"type": "toggle_step", "trackId": "t1", "step": 0,
                                    "seq": "s" * 60000}))
        m = await a.recv_type("error")
        assert m["code"] == "INVALID_FIELD" and "clientSeq" not in m, m
        await b.expect_nothing(0.3)
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_a_flooder_is_slowed_and_the_players_it_floods_stay():
    # A 256 KiB cap, and 32 KiB/s (64 KiB at once) of fan-out per sender.
    s = Server(args=["--out-cap-kb", "256", "--fanout-kb", "32"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        flooder = RawWS.connect(s.port, sid)

        flooder.read_json("snapshot")
        # Two slower players: they read nothing while the flood lasts.
        victims = [RawWS.connect(s.port, sid) for _ in range(2)]
        for v in victims:
            v.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        time.sleep(0.3)
        big_track = dict(TRACK, id="big", parameterLocks=[{"pitch": 1, "volume": 0.5}] * 128)
        burst = b""
        for i in range(400):  # twice --ws-rate: the whole burst the rate allows
            if i % 4 == 0:
                burst += frame(json.dumps({"type": "cursor_move", "position": "p" * 60000}))
            elif i % 4 == 1:
                burst += frame(json.dumps({"type": "cursor_move", "seq": i,
                                           "position": {"x": i, "y": 1, "trackId": "t" * 250}}))
            elif i % 4 == 2:
                burst += frame(json.dumps({"type": "add_track", "track": big_track, "seq": i}))
            else:
                burst += frame(json.dumps({"type": "delete_track", "trackId": "big", "seq": i}))
        flooder.sock.sendall(burst)
        limited = 0
        deadline = time.time() + 20
        answered = 0
        while answered < 300 and time.time() < deadline:
            try:
                m = flooder.read_json(timeout=5)
            except (TimeoutError, socket.timeout):
                break
            if m.get("type") == "error" and m["code"] == "RATE_LIMITED":
                limited += 1
            answered += m.get("type") in ("error", "track_added", "track_deleted")
        time.sleep(2)  # the victims are still not reading
        assert "closing slow reader" not in s.read_log(), "a flood cut off the players it flooded"
        assert limited > 0, "the flooder must be slowed down"
        # The victims are still there, and get what happens next.
        flooder.send({"type": "toggle_step", "trackId": "t1", "step": 3, "seq": 9999})
        for v in victims:
            v.sock.settimeout(20)
            deadline = time.time() + 30
            while time.time() < deadline:
                m = v.read_json(timeout=30)
                if m.get("type") == "step_toggled" and m.get("clientSeq") == 9999:
                    break
            else:
                raise AssertionError("victim lost")
        for w in victims + [flooder]:
            w.close()
    finally:
        s.cleanup()


def test_pings_are_rate_limited_and_coalesced():
    s = Server().start()  # --ws-rate 200: a bucket of 400
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        ws = RawWS.connect(s.port, sid)
        ws.read_json("snapshot")
        ws.sock.sendall(frame("ping") * 5000)
        pongs = 0
        ws.sock.settimeout(2)
        try:
            while True:
                op, payload = ws.read_frame()
                pongs += payload == b"pong"
        except socket.timeout:
            pass
        assert 0 < pongs <= 1000, f"{pongs} pongs for 5000 pings"
        ws.close()
        # A flooder that never reads: its pongs do not pile up in memory.
        hog = RawWS.connect(s.port, sid)
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        time.sleep(0.5)
        before = rss_bytes(s.proc.pid)
        chunk = frame("ping") * 10000
        hog.sock.settimeout(1)
        sent = 0
        t0 = time.time()
        while sent < 300000 and time.time() - t0 < 20:
            try:
                hog.sock.sendall(chunk)
                sent += 10000
            except socket.timeout:
                break  # the server stopped reading it: TCP holds the flooder back
        grown = rss_bytes(s.proc.pid) - before
        assert grown < 16 * 2**20, f"RSS grew {grown >> 20} MiB under a ping flood"
        # Other players are served meanwhile.
        other = RawWS.connect(s.port, sid)
        other.read_json("snapshot")
        other.send({"type": "toggle_step", "trackId": "t1", "step": 2, "seq": 1})
        m = other.read_json("step_toggled")
        assert m["clientSeq"] == 1
        other.close()
        hog.close()
    finally:
        s.cleanup()


async def test_refusals_carry_the_client_seq():
    s = Server(args=["--ws-rate", "20"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        sent = set()
        for i in range(100):
            sent.add(await c.send({"type": "toggle_step", "trackId": "t1", "step": i % 128}))
        limited = acked = 0
        while limited + acked < 100:
            m = await c.recv()
            if m.get("type") == "error":
                assert m["code"] == "RATE_LIMITED" and m.get("clientSeq") in sent, m
                limited += 1
            elif m.get("type") == "step_toggled":
                acked += 1
        assert limited > 0 and acked >= 40, (limited, acked)
        await c.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_frames_sent_with_the_upgrade_are_handled_like_later_ones,
         test_unmasked_client_frame_closes_with_1002,
         test_relayed_fields_are_validated_and_bounded,
         test_a_flooder_is_slowed_and_the_players_it_floods_stay,
         test_pings_are_rate_limited_and_coalesced,
         test_refusals_carry_the_client_seq])
