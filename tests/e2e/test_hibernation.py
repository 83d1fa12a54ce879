"""Hibernation: players stay connected while a silent session's state leaves
memory; the next message reloads it, and no message is ever dropped."""
import asyncio

from harness import TRACK, Client, Server, run


async def test_hibernated_session_wakes_on_messages_without_dropping_any():
    s = Server(args=["--hibernate-after", "1"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        first = await a.request({"type": "toggle_step", "trackId": "t1", "step": 0}, "step_toggled")
        await b.recv_type("step_toggled")
        s.wait_log(rf"session {sid}: hibernated \(2 players")
        _, _, metrics = s.http("GET", "/metrics")
        assert 'grooved_sessions{state="hibernated"} 1' in metrics
        # Three messages back to back into a hibernated session.
        seqs = [await a.send({"type": "toggle_step", "trackId": "t1", "step": k}) for k in (1, 2, 3)]
        got = []
        while len(got) < 3:
            m = await a.recv()
            assert m.get("type") != "snapshot", "waking must not resend the state"
            if m.get("type") == "step_toggled":
                got.append(m)
        assert [m["clientSeq"] for m in got] == seqs
        assert [m["seq"] for m in got] == [first["seq"] + 1, first["seq"] + 2, first["seq"] + 3]
        seen_b = [await b.recv_type("step_toggled") for _ in range(3)]
        assert [m["step"] for m in seen_b] == [1, 2, 3]
        s.wait_log(rf"session {sid}: waking from hibernation")
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tracks"][0]["steps"][:4] == [True] * 4
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_rest_read_and_new_player_wake_a_hibernated_session():
    s = Server(args=["--hibernate-after", "1"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK], "tempo": 97}})
        a = await Client.join(s, sid)
        s.wait_log(rf"session {sid}: hibernated")
        status, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200 and body["state"]["tempo"] == 97
        s.wait_log(rf"session {sid}: hibernated", timeout=10, count=2)
        b = await Client.join(s, sid)
        assert b.snapshot["state"]["tempo"] == 97
        joined = await a.recv_type("player_joined")
        assert joined["player"]["id"] == b.player_id
        await a.close()
        await b.close()
    finally:
        s.cleanup()


async def test_fifteen_seconds_of_silence_then_edits_are_acknowledged():
    s = Server(args=["--hibernate-after", "5"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        await asyncio.sleep(15)
        ack = await a.request({"type": "set_tempo", "tempo": 101}, "tempo_changed")
        assert ack["type"] == "tempo_changed" and ack["tempo"] == 101
        assert (await b.recv_type("tempo_changed"))["tempo"] == 101
        ack = await b.request({"type": "toggle_step", "trackId": "t1", "step": 7}, "step_toggled")
        assert ack["value"] is True
        await a.close()
        await b.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_hibernated_session_wakes_on_messages_without_dropping_any,
         test_rest_read_and_new_player_wake_a_hibernated_session,
         test_fifteen_seconds_of_silence_then_edits_are_acknowledged])
