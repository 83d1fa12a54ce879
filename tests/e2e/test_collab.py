"""Two or more players on one session: ordering, seq, live REST reads, the
KV view on last leave, and REST writes through the single writer."""
import asyncio
import json
import sqlite3

from harness import TRACK, Client, Server, run


def kv_value(server, sid):
    db = sqlite3.connect(f"{server.data_dir}/kv.db")
    try:
        row = db.execute("SELECT value FROM kv WHERE id = ?", (sid,)).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


async def test_two_clients_see_each_others_toggles_in_one_order():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)

        async def play(c, steps):
            for st in steps:
                await c.send({"type": "toggle_step", "trackId": "t1", "step": st})

        await asyncio.gather(play(a, range(0, 20)), play(b, range(20, 40)))

        async def collect(c, n):
            out = []
            while len(out) < n:
                m = await c.recv()
                if m.get("type") == "step_toggled":
                    out.append((m["seq"], m["step"], m["playerId"]))
            return out

        seen_a, seen_b = await asyncio.gather(collect(a, 40), collect(b, 40))
        assert seen_a == seen_b, "both players must see the same order"
        seqs = [x[0] for x in seen_a]
        assert seqs == list(range(seqs[0], seqs[0] + 40)), seqs
        assert sorted(x[1] for x in seen_a) == list(range(40))
        status, _, body = s.http("GET", f"/api/sessions/{sid}")
        steps = body["state"]["tracks"][0]["steps"]
        assert steps[:40] == [True] * 40 and not any(steps[40:])
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_join_snapshot_players_and_presence():
    s = Server().start()
    try:
        sid = s.create()
        a = await Client.join(s, sid)
        assert [p["id"] for p in a.snapshot["players"]] == [a.player_id]
        assert list(a.snapshot.keys()) == ["type", "state", "players", "playerId", "immutable",
                                           "snapshotTimestamp", "playingPlayerIds"]
        b = await Client.join(s, sid)
        assert {p["id"] for p in b.snapshot["players"]} == {a.player_id, b.player_id}
        joined = await a.recv_type("player_joined")
        assert joined["player"]["id"] == b.player_id
        assert list(joined["player"].keys()) == ["id", "connectedAt", "lastMessageAt",
                                                 "messageCount", "color", "colorIndex",
                                                 "animal", "name"]
        await b.send({"type": "play"})
        started = await a.recv_type("playback_started")
        assert started["playerId"] == b.player_id and started["tempo"] == 120
        await b.close()
        stopped = await a.recv_type("playback_stopped")
        left = await a.recv_type("player_left")
        assert stopped["playerId"] == left["playerId"] == b.player_id
        await a.close()
    finally:
        s.cleanup()


async def test_get_is_live_and_kv_view_written_when_last_leaves():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        ack = await a.request({"type": "set_tempo", "tempo": 133}, "tempo_changed")
        assert ack["tempo"] == 133
        await a.request({"type": "toggle_step", "trackId": "t1", "step": 5}, "step_toggled")
        status, headers, live = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200 and live["state"]["tempo"] == 133, live
        assert live["state"]["tracks"][0]["steps"][5] is True
        assert headers["etag"] == '"2"'
        assert kv_value(s, sid) is None, "KV view must not be written per mutation"
        await a.close()
        s.wait_log(rf"session {sid}: KV view written")
        for _ in range(100):
            kv = kv_value(s, sid)
            if kv:
                break
            await asyncio.sleep(0.05)
        _, _, after = s.http("GET", f"/api/sessions/{sid}")
        assert kv["state"] == after["state"] == live["state"]
        assert kv["name"] == after["name"]
    finally:
        s.cleanup()


async def test_rest_writes_go_through_the_single_writer():
    s = Server().start()
    try:
        sid = s.create({"name": "Jam", "state": {"tracks": [TRACK]}})
        # No players: PUT replaces durably.
        st, _, body = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 90, "tracks": [TRACK]}})
        assert st == 200 and body["id"] == sid
        a = await Client.join(s, sid)
        assert a.snapshot["state"]["tempo"] == 90
        # PATCH renames through the writer and tells the players.
        st, _, body = s.http("PATCH", f"/api/sessions/{sid}", {"name": "  Night  "})
        assert st == 200 and body["name"] == "Night", body
        changed = await a.recv_type("session_name_changed")
        assert changed["name"] == "Night" and "seq" in changed
        # A live PUT without If-Match may not undo what players were told.
        st, headers, body = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 150, "tracks": [TRACK]}})
        assert st == 409 and body["error"] == "Session is live", (st, body)
        # ...but the same canonical state (mute differs: not canonical) is a no-op 200.
        muted = dict(TRACK, muted=True)
        st, _, _ = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 90, "tracks": [muted]}})
        assert st == 200
        # A stale If-Match is refused; the current one replaces and resynchronises players.
        st, _, _ = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 150}}, {"If-Match": '"999"'})
        assert st == 412
        st, _, _ = s.http("PUT", f"/api/sessions/{sid}", {"state": {"tempo": 150}}, {"If-Match": headers["etag"]})
        assert st == 200
        snap = await a.recv_type("snapshot")
        assert snap["state"]["tempo"] == 150 and snap["state"]["tracks"] == []
        await a.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_two_clients_see_each_others_toggles_in_one_order,
         test_join_snapshot_players_and_presence,
         test_get_is_live_and_kv_view_written_when_last_leaves,
         test_rest_writes_go_through_the_single_writer])
