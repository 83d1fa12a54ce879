"""Eviction is invisible, and the load order on wake is durable store, then
the KV view (sessions that were never live), then defaults."""
import asyncio
import json
import sqlite3
import uuid

from harness import TRACK, Client, Server, run


async def test_eviction_then_reconnect_same_state_and_seq_continues():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        last = None
        for step in (1, 2, 3, 5, 8):
            last = await c.request({"type": "toggle_step", "trackId": "t1", "step": step}, "step_toggled")
        await c.request({"type": "set_swing", "swing": 33}, "swing_changed")
        before = c.snapshot
        _, _, live = s.http("GET", f"/api/sessions/{sid}")
        await c.close()
        s.wait_log(rf"session {sid}: evicted")
        c2 = await Client.join(s, sid)
        assert c2.snapshot["state"] == live["state"], "evicted session must reload unchanged"
        assert before["state"] != c2.snapshot["state"]
        ack = await c2.request({"type": "toggle_step", "trackId": "t1", "step": 13}, "step_toggled")
        assert ack["seq"] == last["seq"] + 2, (ack["seq"], last["seq"])
        _, _, metrics = s.http("GET", "/metrics")
        assert "grooved_sessions_evicted_total 1" in metrics
        assert 'grooved_reloads_total{source="durable"} 1' in metrics
        await c2.close()
    finally:
        s.cleanup()


async def test_rest_read_of_evicted_session_reloads_it():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        sid = s.create({"name": "Idle", "state": {"tempo": 99}})
        s.wait_log(rf"session {sid}: evicted")
        status, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200 and body["name"] == "Idle" and body["state"]["tempo"] == 99
    finally:
        s.cleanup()


async def test_kv_view_serves_sessions_that_were_never_live():
    s = Server().start()
    try:
        s.stop()
        sid = str(uuid.uuid4())
        record = {"id": sid, "name": "Imported", "createdAt": 1, "updatedAt": 2,
                  "lastAccessedAt": 2, "remixedFrom": None, "remixedFromName": None,
                  "remixCount": 0, "immutable": False,
                  "state": {"tracks": [TRACK], "tempo": 111, "swing": 0, "version": 1}}
        db = sqlite3.connect(f"{s.data_dir}/kv.db")
        db.execute("INSERT INTO kv(id, updated_at, value) VALUES(?, 2, ?)", (sid, json.dumps(record)))
        db.commit()
        db.close()
        s.start()
        status, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200 and body["state"]["tempo"] == 111 and body["name"] == "Imported"
        c = await Client.join(s, sid)
        await c.request({"type": "set_tempo", "tempo": 70}, "tempo_changed")
        await c.close()
        s.kill9()
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tempo"] == 70, "after its first edit it lives in the durable store"
        assert 'grooved_reloads_total{source="durable"} 1' in s.http("GET", "/metrics")[2]
    finally:
        s.cleanup()


async def test_durable_store_wins_over_a_stale_kv_view():
    s = Server().start()
    try:
        sid = s.create({"state": {"tempo": 100}})
        c = await Client.join(s, sid)
        await c.request({"type": "set_tempo", "tempo": 150}, "tempo_changed")
        await c.close()
        s.wait_log(rf"session {sid}: KV view written")
        assert s.stop() == 0
        db = sqlite3.connect(f"{s.data_dir}/kv.db")
        value = json.loads(db.execute("SELECT value FROM kv WHERE id=?", (sid,)).fetchone()[0])
        value["state"]["tempo"] = 61
        db.execute("UPDATE kv SET value=? WHERE id=?", (json.dumps(value), sid))
        db.commit()
        db.close()
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tempo"] == 150
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_eviction_then_reconnect_same_state_and_seq_continues,
         test_rest_read_of_evicted_session_reloads_it,
         test_kv_view_serves_sessions_that_were_never_live,
         test_durable_store_wins_over_a_stale_kv_view])
