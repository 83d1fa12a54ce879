"""Conformance with the reference protocol (Appendix A) and with every row of
PROTOCOL-DECISIONS.md that a client can observe."""
import asyncio
import json

import websockets

from harness import TRACK, Client, Server, run

FULL = dict(TRACK, steps=[False] * 128)
EFFECTS = {"reverb": {"decay": 2, "wet": 0.1}, "delay": {"time": "bogus", "feedback": 2, "wet": 0},
           "chorus": {"frequency": 1.5, "depth": 0.5, "wet": 0},
           "distortion": {"amount": 0.4, "wet": 0}}

# One valid message of each of the 17 mutating types (track "t1" exists; "t2" is added).
MUTATIONS = [
    ({"type": "toggle_step", "trackId": "t1", "step": 3}, "step_toggled"),
    ({"type": "set_tempo", "tempo": 130}, "tempo_changed"),
    ({"type": "set_swing", "swing": 10}, "swing_changed"),
    ({"type": "set_parameter_lock", "trackId": "t1", "step": 3, "lock": {"pitch": 2}}, "parameter_lock_set"),
    ({"type": "add_track", "track": dict(TRACK, id="t2", name="Hat", sampleId="hihat")}, "track_added"),
    ({"type": "clear_track", "trackId": "t2"}, "track_cleared"),
    ({"type": "set_track_sample", "trackId": "t2", "sampleId": "clap", "name": "Clap"}, "track_sample_set"),
    ({"type": "set_track_volume", "trackId": "t1", "volume": 0.5}, "track_volume_set"),
    ({"type": "set_track_transpose", "trackId": "t1", "transpose": 3}, "track_transpose_set"),
    ({"type": "set_track_step_count", "trackId": "t1", "stepCount": 32}, "track_step_count_set"),
    ({"type": "set_track_playback_mode", "trackId": "t1", "playbackMode": "gate"}, "track_playback_mode_set"),
    ({"type": "set_effects", "effects": EFFECTS}, "effects_changed"),
    ({"type": "set_fm_params", "trackId": "t1", "fmParams": {"harmonicity": 2, "modulationIndex": 3}}, "fm_params_changed"),
    ({"type": "copy_sequence", "fromTrackId": "t1", "toTrackId": "t2"}, "sequence_copied"),
    ({"type": "move_sequence", "fromTrackId": "t2", "toTrackId": "t1"}, "sequence_moved"),
    ({"type": "set_session_name", "name": "  Late  "}, "session_name_changed"),
    ({"type": "delete_track", "trackId": "t2"}, "track_deleted"),
]


async def test_every_mutation_reaches_all_with_seq_and_clientseq():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        expected_seq = 1
        for msg, reply in MUTATIONS:
            ack = await a.request(msg, reply)
            assert ack["type"] == reply, (msg, ack)
            seen = await b.recv_type(reply)
            assert seen == ack, "one serialisation goes to every player"
            assert ack["seq"] == expected_seq and ack["clientSeq"] == a.seq
            assert ack["playerId"] == a.player_id
            assert list(ack)[0] == "type" and list(ack)[-3:] == ["playerId", "seq", "clientSeq"]
            expected_seq += 1
        # Confirmations: a duplicate add and a delete of a missing track still advance seq.
        dup = await a.request({"type": "add_track", "track": TRACK}, "track_added")
        assert dup["seq"] == expected_seq and dup["track"]["id"] == "t1"
        gone = await a.request({"type": "delete_track", "trackId": "nope"}, "track_deleted")
        assert gone["seq"] == expected_seq + 1
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["name"] == "Late" and body["state"]["tempo"] == 130
        assert [t["id"] for t in body["state"]["tracks"]] == ["t1"]
        st = body["state"]["tracks"][0]
        assert st["stepCount"] == 32 and st["playbackMode"] == "gate" and st["transpose"] == 3
        assert st["fmParams"] == {"harmonicity": 2, "modulationIndex": 3}
        assert body["state"]["effects"]["delay"]["time"] == "8n"
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_readonly_messages_and_their_recipients():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        await a.recv_type("player_joined")
        await a.send({"type": "cursor_move", "position": {"x": 10, "y": 20}}, with_seq=False)
        moved = await b.recv_type("cursor_moved")
        assert list(moved) == ["type", "playerId", "position", "color", "name"]
        assert moved["position"] == {"x": 10, "y": 20} and "seq" not in moved
        await a.send({"type": "clock_sync_request", "clientTime": 12345}, with_seq=False)
        cs = await a.recv_type("clock_sync_response")
        assert cs["clientTime"] == 12345 and isinstance(cs["serverTime"], int)
        await a.send({"type": "mute_track", "trackId": "t1", "muted": True})
        m1 = await a.recv_type("track_muted")
        m2 = await b.recv_type("track_muted")
        assert m1 == m2 and "seq" not in m1 and "clientSeq" not in m1
        await a.send({"type": "play"})
        p = await b.recv_type("playback_started")
        assert list(p) == ["type", "playerId", "startTime", "tempo"] and "seq" not in p
        await a.recv_type("playback_started")
        await a.send({"type": "request_snapshot"})
        snap = await a.recv_type("snapshot")
        assert snap["playingPlayerIds"] == [a.player_id]
        assert snap["state"]["tracks"][0]["muted"] is True
        await b.expect_nothing(0.3)  # cursor echo, clock sync and snapshots went to one socket
        await a.ws.send("ping")
        assert await a.recv() == "pong"
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_clamping_and_normalisation_table():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        cases = [
            ({"type": "set_tempo", "tempo": 200}, "tempo_changed", "tempo", 180),
            ({"type": "set_swing", "swing": -5}, "swing_changed", "swing", 0),
            ({"type": "set_track_volume", "trackId": "t1", "volume": 2}, "track_volume_set", "volume", 1),
            ({"type": "set_track_transpose", "trackId": "t1", "transpose": 30.7}, "track_transpose_set", "transpose", 24),
            ({"type": "set_track_transpose", "trackId": "t1", "transpose": -2.5}, "track_transpose_set", "transpose", -2),
            ({"type": "set_track_transpose", "trackId": "t1", "transpose": 2.5}, "track_transpose_set", "transpose", 3),
            ({"type": "set_fm_params", "trackId": "t1", "fmParams": {"harmonicity": 0.1, "modulationIndex": 99}},
             "fm_params_changed", "fmParams", {"harmonicity": 0.5, "modulationIndex": 20}),
            ({"type": "set_parameter_lock", "trackId": "t1", "step": 0, "lock": {"pitch": 99, "volume": -1}},
             "parameter_lock_set", "lock", {"pitch": 24, "volume": 0}),
            ({"type": "set_parameter_lock", "trackId": "t1", "step": 0, "lock": {"pitch": "x"}},
             "parameter_lock_set", "lock", None),
        ]
        for msg, reply, field, want in cases:
            ack = await a.request(msg, reply)
            assert ack[field] == want, (msg, ack)
        ack = await a.request({"type": "set_effects", "effects": EFFECTS}, "effects_changed")
        assert ack["effects"]["delay"] == {"time": "8n", "feedback": 0.95, "wet": 0}
        # Toggle ignores stepCount; copy/move with from == to as in the reference.
        ack = await a.request({"type": "toggle_step", "trackId": "t1", "step": 100}, "step_toggled")
        assert ack["value"] is True
        ack = await a.request({"type": "copy_sequence", "fromTrackId": "t1", "toTrackId": "t1"}, "sequence_copied")
        assert ack["steps"][100] is True and ack["stepCount"] == 16
        ack = await a.request({"type": "move_sequence", "fromTrackId": "t1", "toTrackId": "t1"}, "sequence_moved")
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert not any(body["state"]["tracks"][0]["steps"]), "move onto itself clears the track"
        # add_track is normalised: unknown keys dropped, arrays to 128, stored track broadcast.
        ack = await a.request({"type": "add_track", "track": dict(TRACK, id="n", volume=7, extra=1)}, "track_added")
        assert ack["track"]["volume"] == 1 and "extra" not in ack["track"]
        assert len(ack["track"]["steps"]) == 128 and ack["track"]["playbackMode"] == "oneshot"
        await a.close()
    finally:
        s.cleanup()


async def test_published_sessions_are_immutable_on_every_path():
    s = Server().start()
    try:
        src = s.create({"name": "Song", "state": {"tracks": [TRACK]}})
        st, _, pub = s.http("POST", f"/api/sessions/{src}/publish")
        assert st == 201 and pub["immutable"] is True and pub["sourceId"] == pub["remixedFrom"] == src
        pid = pub["id"]
        a = await Client.join(s, pid)
        b = await Client.join(s, pid)
        assert a.snapshot["immutable"] is True
        invalid = {"type": "toggle_step", "trackId": "t1", "step": 999}  # gate before validation
        for msg in [m for m, _ in MUTATIONS] + [invalid]:
            await a.send(msg)
            err = await a.recv_type("error")
            assert err["code"] == "SESSION_PUBLISHED" and err["clientSeq"] == a.seq, (msg, err)
        # mute/solo: relayed to the players, never stored.
        await a.send({"type": "mute_track", "trackId": "t1", "muted": True})
        assert (await b.recv_type("track_muted"))["muted"] is True
        await a.send({"type": "play"})
        await b.recv_type("playback_started")
        st, _, body = s.http("GET", f"/api/sessions/{pid}")
        assert body["state"]["tracks"][0]["muted"] is False and body["name"] == "Song"
        assert body["immutable"] is True and body["remixedFromName"] == "Song"
        assert s.http("PUT", f"/api/sessions/{pid}", {"state": {}})[0] == 403
        st, _, body = s.http("PATCH", f"/api/sessions/{pid}", {"name": "x"})
        assert st == 403 and body["immutable"] is True
        st, _, body = s.http("POST", f"/api/sessions/{pid}/publish")
        assert st == 400 and body["error"].startswith("Cannot publish from an already-published")
        st, _, rem = s.http("POST", f"/api/sessions/{pid}/remix")
        assert st == 201 and rem["remixedFrom"] == pid
        c = await Client.join(s, rem["id"])
        assert c.snapshot["immutable"] is False
        ack = await c.request({"type": "set_tempo", "tempo": 90}, "tempo_changed")
        assert ack["tempo"] == 90
        for x in (a, b, c):
            await x.close()
    finally:
        s.cleanup()


async def test_remix_and_publish_read_the_live_state():
    s = Server().start()
    try:
        src = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, src)
        await a.request({"type": "toggle_step", "trackId": "t1", "step": 5}, "step_toggled")
        st, _, rem = s.http("POST", f"/api/sessions/{src}/remix")
        assert st == 201
        _, _, copy = s.http("GET", f"/api/sessions/{rem['id']}")
        assert copy["state"]["tracks"][0]["steps"][5] is True, "never a stale copy"
        assert copy["remixedFrom"] == src and copy["remixedFromName"] == "Kick" and copy["name"] is None
        _, _, orig = s.http("GET", f"/api/sessions/{src}")
        assert orig["remixCount"] == 1
        await a.close()
    finally:
        s.cleanup()


async def test_state_hash_vectors_over_the_wire_and_across_reload():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        empty = s.create()
        a = await Client.join(s, empty)
        await a.send({"type": "state_hash", "hash": "9cdc0372"}, with_seq=False)
        assert (await a.recv())["type"] == "state_hash_match"
        await a.close()
        v4 = {"tracks": [{"id": "t", "name": "Caf\u00e9 \U0001F3B5", "sampleId": "synth:lead",
                          "steps": [True], "parameterLocks": [], "volume": 0.1,
                          "playbackMode": "gate", "transpose": -3, "stepCount": 8}],
              "tempo": 95.5, "swing": 33}
        sid = s.create({"state": v4})
        a = await Client.join(s, sid)
        await a.send({"type": "state_hash", "hash": "c82ff7e8"}, with_seq=False)
        assert await a.recv() == {"type": "state_hash_match"}
        await a.send({"type": "state_hash", "hash": "00000000"}, with_seq=False)
        assert await a.recv() == {"type": "state_mismatch", "serverHash": "c82ff7e8"}
        await a.close()
        s.wait_log(rf"session {sid}: evicted")
        b = await Client.join(s, sid)
        await b.send({"type": "state_hash", "hash": "c82ff7e8"}, with_seq=False)
        assert await b.recv() == {"type": "state_hash_match"}, "hash stable across reload"
        await b.close()
    finally:
        s.cleanup()


async def test_ack_gap_snapshot_threshold_50():
    s = Server().start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        for i in range(51):
            await a.send({"type": "toggle_step", "trackId": "t1", "step": i % 128})
        for _ in range(51):
            await a.recv_type("step_toggled")
        b = await Client.join(s, sid)
        await b.send({"type": "set_swing", "swing": 1, "ack": 0})
        first = await b.recv()
        assert first["type"] == "snapshot", first
        await b.recv_type("swing_changed")
        await b.send({"type": "set_swing", "swing": 2, "ack": 2})  # serverSeq 52 - 2 = 50: no snapshot
        assert (await b.recv())["type"] == "swing_changed"
        await a.close()
        await b.close()
    finally:
        s.cleanup()


def test_listing_pagination_from_the_kv_view():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        ids = [s.create({"name": f"S{i}"}) for i in range(5)]
        for sid in ids:
            s.wait_log(rf"session {sid}: KV view written")
        seen, cursor = [], None
        while True:
            path = "/api/sessions?limit=2" + (f"&cursor={cursor}" if cursor else "")
            st, _, page = s.http("GET", path)
            assert st == 200 and len(page["sessions"]) <= 2
            seen += page["sessions"]
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert sorted(x["id"] for x in seen) == sorted(ids)
        times = [x["updatedAt"] for x in seen]
        assert times == sorted(times, reverse=True), "newest first"
        assert set(seen[0]) == {"id", "name", "updatedAt", "trackCount", "immutable"}
        assert s.http("GET", "/api/sessions?limit=0")[0] == 400
        assert s.http("GET", "/api/sessions?cursor=zzz")[0] == 400
    finally:
        s.cleanup()


def test_rate_limit_covers_every_creating_route():
    s = Server(args=["--create-rate", "2"]).start()
    try:
        a = s.create()
        s.create()
        st, h, body = s.http("POST", f"/api/sessions/{a}/remix")
        assert st == 429 and "retry-after" in h
        assert s.http("POST", f"/api/sessions/{a}/publish")[0] == 429
    finally:
        s.cleanup()


async def test_one_name_rule_everywhere():
    s = Server().start()
    try:
        st, _, body = s.http("POST", "/api/sessions", {"name": "Monday=fun"})
        assert st == 400 and body["details"] == ["Name contains potentially unsafe content"]
        sid = s.create({"name": "  Padded  "})
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["name"] == "Padded"
        a = await Client.join(s, sid)
        await a.send({"type": "set_session_name", "name": "<script>x"})
        err = await a.recv_type("error")
        assert err["code"] == "INVALID_FIELD" and "unsafe" in err["message"]
        ack = await a.request({"type": "set_session_name", "name": "   "}, "session_name_changed")
        assert ack["name"] == ""
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["name"] is None
        st, _, body = s.http("PATCH", f"/api/sessions/{sid}", {"name": "x" * 101})
        assert st == 400 and body["details"] == ["Name cannot exceed 100 characters"]
        await a.close()
    finally:
        s.cleanup()


def test_routes_debug_flag_and_static_page():
    s = Server().start()
    try:
        sid = s.create()
        assert s.http("GET", f"/api/debug/sessions/{sid}")[0] == 404
        st, h, body = s.http("GET", "/")
        assert st == 200 and h["content-type"].startswith("text/html")
        assert s.http("GET", f"/s/{sid}")[0] == 200
        # Any other route is the single-page app's too (issue 11): the page asks the API,
        # which does not know this id.
        assert s.http("GET", f"/s/{sid.upper()}")[:3:2] == (200, body)
        assert s.http("GET", f"/api/sessions/{sid.upper()}")[0] == 404
        assert s.http("DELETE", f"/api/sessions/{sid}")[0] == 404
        assert s.http("GET", "/healthz")[2]["status"] == "ok"
    finally:
        s.cleanup()
    s = Server(args=["--debug-routes", "1"]).start()
    try:
        sid = s.create()
        st, _, body = s.http("GET", f"/api/debug/sessions/{sid}")
        assert st == 200 and body["id"] == sid and body["stateHash"] == "9cdc0372"
    finally:
        s.cleanup()


async def test_bodyless_create_track_limits_and_unknown_tracks():
    s = Server().start()
    try:
        st, _, made = s.http("POST", "/api/sessions")
        assert st == 201 and made["url"] == f"/s/{made['id']}"
        _, _, body = s.http("GET", f"/api/sessions/{made['id']}")
        assert list(body) == ["id", "name", "createdAt", "updatedAt", "lastAccessedAt", "remixedFrom",
                              "remixedFromName", "remixCount", "immutable", "state"]
        assert body["state"] == {"tracks": [], "tempo": 120, "swing": 0, "version": 1}
        assert body["name"] is None and body["remixCount"] == 0 and body["immutable"] is False
        full = [dict(TRACK, id=f"t{i}") for i in range(16)]
        sid = s.create({"state": {"tracks": full}})
        a = await Client.join(s, sid)
        err = await a.request({"type": "add_track", "track": dict(TRACK, id="x")}, "track_added")
        assert err["type"] == "error" and err["code"] == "TOO_MANY_TRACKS", err
        for msg, _ in MUTATIONS:
            if msg["type"] in ("delete_track", "add_track") or not any(k in msg for k in ("trackId", "fromTrackId")):
                continue
            bad = {k: ("ghost" if k in ("trackId", "fromTrackId") else v) for k, v in msg.items()}
            err = await a.request(bad, "never")
            assert err["code"] == "TRACK_NOT_FOUND", (bad, err)
        _, headers, _ = s.http("GET", f"/api/sessions/{sid}")
        assert headers["etag"] == '"0"', "rejected messages never advance serverSeq"
        await a.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_every_mutation_reaches_all_with_seq_and_clientseq,
         test_readonly_messages_and_their_recipients,
         test_clamping_and_normalisation_table,
         test_published_sessions_are_immutable_on_every_path,
         test_remix_and_publish_read_the_live_state,
         test_state_hash_vectors_over_the_wire_and_across_reload,
         test_ack_gap_snapshot_threshold_50,
         test_listing_pagination_from_the_kv_view,
         test_rate_limit_covers_every_creating_route,
         test_one_name_rule_everywhere,
         test_routes_debug_flag_and_static_page,
         test_bodyless_create_track_limits_and_unknown_tracks])
