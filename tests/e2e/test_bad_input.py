"""Bad input gets a clear error, the connection stays usable and the session
is unharmed; REST answers with a status and a JSON body."""
import asyncio
import json
import socket

import websockets

from harness import TRACK, Client, Server, run


async def test_ws_errors_keep_connection_and_session_intact():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        other = await Client.join(s, sid)
        await c.request({"type": "toggle_step", "trackId": "t1", "step": 4}, "step_toggled")
        _, _, before = s.http("GET", f"/api/sessions/{sid}")

        async def err(raw):
            await c.ws.send(raw)
            m = await c.recv_type("error")
            return m

        m = await err("{")
        assert m == {"type": "error", "code": "INVALID_JSON", "message": "Invalid JSON"}
        assert (await err("42"))["code"] == "INVALID_JSON"
        m = await err(json.dumps({"type": "explode", "seq": 77}))
        assert m["code"] == "UNKNOWN_TYPE" and m["clientSeq"] == 77
        assert (await err(json.dumps({"seq": 1})))["code"] == "UNKNOWN_TYPE"
        for bad in ({"type": "set_tempo", "tempo": "150"}, {"type": "set_tempo", "tempo": None},
                    {"type": "set_tempo", "tempo": True}, {"type": "set_tempo"},
                    {"type": "toggle_step", "trackId": "t1", "step": 128},
                    {"type": "toggle_step", "trackId": "t1", "step": -1},
                    {"type": "toggle_step", "trackId": "t1", "step": 1.5},
                    {"type": "set_track_volume", "trackId": "t1", "volume": "loud"},
                    {"type": "add_track", "track": {"id": "x"}},
                    {"type": "add_track", "track": dict(TRACK, id="y", playbackMode="loop")}):
            m = await err(json.dumps(dict(bad, seq=5)))
            assert m["code"] == "INVALID_FIELD" and m["clientSeq"] == 5, (bad, m)
        m = await err(json.dumps({"type": "toggle_step", "trackId": "nope", "step": 1, "seq": 6}))
        assert m["code"] == "TRACK_NOT_FOUND" and m["clientSeq"] == 6
        m = await err("x" * 65537)
        assert m["code"] == "MESSAGE_TOO_LARGE" and m["message"] == "Message too large"
        # A large but legal frame (under 64 KiB) still parses.
        pad = json.dumps({"type": "cursor_move", "position": {"x": 1, "y": 2, "pad": "p" * 60000}})
        await c.ws.send(pad)
        moved = await other.recv_type("cursor_moved")
        assert moved["position"]["x"] == 1
        # Clamping, not rejection, for numbers out of range.
        ack = await c.request({"type": "set_tempo", "tempo": 999}, "tempo_changed")
        assert ack["tempo"] == 180
        await c.ws.send("ping")
        assert await c.recv() == "pong"
        # Nothing above changed the session beyond the clamped tempo.
        _, _, after = s.http("GET", f"/api/sessions/{sid}")
        assert after["state"]["tracks"] == before["state"]["tracks"]
        assert after["state"]["tempo"] == 180
        _, _, metrics = s.http("GET", "/metrics")
        assert 'grooved_rejected_total{code="INVALID_FIELD"} 10' in metrics, metrics
        await c.close()
        await other.close()
    finally:
        s.cleanup()


async def test_eleventh_player_gets_503_and_unknown_sessions_404():
    s = Server().start()
    try:
        sid = s.create()
        # The REST read counts the players against the limit (the page tells a
        # full session from another refusal by it).
        _, h, _ = s.http("GET", f"/api/sessions/{sid}")
        assert (h["x-grooved-players"], h["x-grooved-player-limit"]) == ("0", "10"), h
        players = [await Client.join(s, sid) for _ in range(10)]
        try:
            await websockets.connect(s.ws_url(sid), open_timeout=10)
            raise AssertionError("11th connection must be refused")
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 503
        _, h, _ = s.http("GET", f"/api/sessions/{sid}")
        assert (h["x-grooved-players"], h["x-grooved-player-limit"]) == ("10", "10"), h
        try:
            await websockets.connect(s.ws_url("3f2504e0-4f89-41d3-9a0c-0305e82c3301"))
            raise AssertionError("unknown session must be refused")
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 404
        await players[0].close()
        await players[1].recv_type("player_left")
        c = await Client.join(s, sid)  # a slot is free again
        await c.close()
        for p in players[1:]:
            await p.close()
    finally:
        s.cleanup()


def test_rest_errors():
    s = Server(args=["--create-rate", "5"]).start()
    try:
        sid = s.create()
        st, h, b = s.http("POST", "/api/sessions", {"state": {"tempo": 9999}})
        assert (st, b) == (400, {"error": "Validation failed", "details": ["Tempo must be between 60 and 180"]})
        st, _, b = s.http("POST", "/api/sessions", {"tracks": [TRACK] * 17})
        assert st == 400 and b["details"] == ["Cannot have more than 16 tracks"]
        st, _, b = s.http("POST", "/api/sessions", {"name": "<script>"})
        assert st == 400 and b["details"] == ["Name contains potentially unsafe content"]
        st, _, b = s.http("POST", "/api/sessions", raw=b"{not json", headers={"Content-Type": "application/json"})
        assert (st, b) == (400, {"error": "Invalid request body"})
        st, _, b = s.http("POST", "/api/sessions", raw=b"x" * 65537, headers={"Content-Type": "application/json"})
        assert (st, b) == (413, {"error": "Request body too large"})
        st, _, b = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 100, "pad": "x" * 70000}})
        assert st == 413
        st, _, b = s.http("PUT", f"/api/sessions/{sid}", {"nostate": 1})
        assert st == 400 and b["details"] == ["State must be an object"]
        st, _, b = s.http("PATCH", f"/api/sessions/{sid}", {"title": "x"})
        assert (st, b) == (400, {"error": "Missing name field"})
        unknown = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
        for m in ("GET", "PUT", "PATCH"):
            st, _, b = s.http(m, f"/api/sessions/{unknown}", {"state": {}, "name": "a"} if m != "GET" else None)
            assert (st, b) == (404, {"error": "Session not found"}), (m, st, b)
        st, _, b = s.http("GET", "/api/sessions/" + "-" * 36)
        assert (st, b) == (400, {"error": "Invalid session ID format"})
        st, _, b = s.http("GET", "/api/sessions/" + sid.upper())
        assert (st, b) == (404, {"error": "Not found"})
        st, _, b = s.http("GET", f"/api/sessions/{sid}/")
        assert st == 404
        st, h, b = s.http("OPTIONS", "/anything")
        assert st == 200 and h["access-control-allow-origin"] == "*"
        # The session survived all of that.
        st, _, b = s.http("GET", f"/api/sessions/{sid}")
        assert st == 200 and b["state"]["tempo"] == 120
        # Create rate limit: 5 per minute configured, 1 used above plus 0 failed? All count.
        codes = [s.http("POST", "/api/sessions", {})[0] for _ in range(8)]
        assert 429 in codes, codes
        st, h, b = s.http("POST", "/api/sessions", {})
        assert st == 429 and int(h["retry-after"]) >= 1 and b["retryAfter"] >= 1
        assert h["x-ratelimit-remaining"] == "0"
    finally:
        s.cleanup()


def test_garbage_bytes_and_slowloris_do_not_hurt():
    s = Server().start()
    try:
        for payload in (b"\x00\xff" * 500 + b"\r\n\r\n", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
                sock.sendall(payload)
                try:
                    sock.recv(100)
                except (ConnectionResetError, socket.timeout):
                    pass
        st, _, b = s.http("GET", "/healthz")
        assert st == 200 and b["status"] == "ok"
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_ws_errors_keep_connection_and_session_intact,
         test_eleventh_player_gets_503_and_unknown_sessions_404,
         test_rest_errors,
         test_garbage_bytes_and_slowloris_do_not_hurt])
