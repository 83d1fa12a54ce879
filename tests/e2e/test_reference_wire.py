"""Three wire details where grooved must answer as the reference backend does
(found by running the same scripted scenarios against both): the snapshot's
`players` stay in join order after someone leaves, `playingPlayerIds` lists
players in the order they started playing, and OPTIONS answers 200 with an
empty body and no Content-Type."""
import asyncio
import socket

from harness import Client, Server, run


async def join_all(s, sid, n):
    """n players joined one after the other (each join is complete, so the
    server's join order is this list's order)."""
    out = []
    for _ in range(n):
        out.append(await Client.join(s, sid))
    return out


async def test_snapshot_players_stay_in_join_order_after_a_leave():
    s = Server().start()
    try:
        sid = s.create()
        a, b, c, d = await join_all(s, sid, 4)
        await b.close()
        await a.recv_type("player_left")
        e = await Client.join(s, sid)
        ids = [p["id"] for p in e.snapshot["players"]]
        assert ids == [a.player_id, c.player_id, d.player_id, e.player_id], ids
        # And on a resync request, from an existing player.
        await c.send({"type": "request_snapshot"}, with_seq=False)
        snap = await c.recv_type("snapshot")
        assert [p["id"] for p in snap["players"]] == ids
        for x in (a, c, d, e):
            await x.close()
    finally:
        s.cleanup()


async def play(sender, others, kind):
    """Sends play or stop and waits until every player has seen it."""
    await sender.send({"type": kind}, with_seq=False)
    want = "playback_started" if kind == "play" else "playback_stopped"
    for x in [sender] + others:
        while True:
            m = await x.recv_type(want)
            if m["playerId"] == sender.player_id:
                break


async def test_playing_player_ids_in_the_order_players_started():
    s = Server().start()
    try:
        sid = s.create()
        a, b, c = await join_all(s, sid, 3)
        await play(c, [a, b], "play")
        await play(a, [b, c], "play")
        d = await Client.join(s, sid)
        assert d.snapshot["playingPlayerIds"] == [c.player_id, a.player_id], d.snapshot["playingPlayerIds"]
        # A second play keeps its place; stop then play moves to the end.
        await play(c, [a, b, d], "play")
        await play(b, [a, c, d], "play")
        e = await Client.join(s, sid)
        assert e.snapshot["playingPlayerIds"] == [c.player_id, a.player_id, b.player_id]
        await play(c, [a, b, d, e], "stop")
        await play(c, [a, b, d, e], "play")
        f = await Client.join(s, sid)
        assert f.snapshot["playingPlayerIds"] == [a.player_id, b.player_id, c.player_id]
        # A playing player who leaves is gone from the list.
        await a.close()
        while (await b.recv_type("player_left"))["playerId"] != a.player_id:
            pass
        g = await Client.join(s, sid)
        assert g.snapshot["playingPlayerIds"] == [b.player_id, c.player_id]
        for x in (b, c, d, e, f, g):
            await x.close()
    finally:
        s.cleanup()


def options(s, path):
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(f"OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: http://example.com\r\n"
                 "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n".encode())
    out = b""
    while True:
        d = sock.recv(65536)
        if not d:
            break
        out += d
    sock.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def test_options_is_200_with_no_body_and_no_content_type():
    s = Server().start()
    try:
        sid = s.create()
        for path in ["/api/sessions", f"/api/sessions/{sid}", f"/api/sessions/{sid}/remix", "/", "/anything"]:
            status, headers, body = options(s, path)
            assert status.startswith("HTTP/1.1 200"), (path, status)
            assert body == b"", (path, body)
            assert "content-type" not in headers, (path, headers)
            assert headers.get("content-length", "0") == "0", (path, headers)
            assert headers["access-control-allow-origin"] == "*"
            assert "PUT" in headers["access-control-allow-methods"]
            assert "Content-Type" in headers["access-control-allow-headers"]
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([
        test_snapshot_players_stay_in_join_order_after_a_leave,
        test_playing_player_ids_in_the_order_players_started,
        test_options_is_200_with_no_body_and_no_content_type,
    ])
