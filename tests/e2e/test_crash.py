"""Crash safety: kill -9 loses nothing that was acknowledged, and serverSeq
never goes backwards."""
import asyncio
import json
import random

from harness import CLUSTER, Client, Server, Skip, run

TRACKS = [{"id": "a", "name": "A", "sampleId": "kick", "steps": []},
          {"id": "b", "name": "B", "sampleId": "snare", "steps": []}]


async def test_kill9_after_200_acknowledged_toggles():
    s = Server(args=["--checkpoint-every", "64"]).start()
    try:
        sid = s.create({"state": {"tracks": TRACKS}})
        c = await Client.join(s, sid)
        targets = [("a", i) for i in range(128)] + [("b", i) for i in range(72)]
        for tid, step in targets:  # pipelined: 200 in flight at once
            await c.send({"type": "toggle_step", "trackId": tid, "step": step})
        acked = 0
        last_seq = 0
        while acked < 200:
            m = await c.recv()
            if m.get("type") == "step_toggled" and m["playerId"] == c.player_id:
                acked += 1
                last_seq = m["seq"]
        s.kill9()
        s.start()
        status, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert status == 200
        a, b = body["state"]["tracks"]
        assert a["steps"] == [True] * 128, "every acknowledged toggle must survive kill -9"
        assert b["steps"][:72] == [True] * 72 and not any(b["steps"][72:])
        c2 = await Client.join(s, sid)
        ack = await c2.request({"type": "toggle_step", "trackId": "b", "step": 100}, "step_toggled")
        assert ack["seq"] == last_seq + 1, (ack["seq"], last_seq)
        await c2.close()
    finally:
        s.cleanup()


async def test_kill9_at_random_moments_under_load_keeps_a_gapless_prefix():
    """Several clients on several sessions; kill -9 at a random instant. After
    the restart: every broadcast any client saw and every acknowledged toggle
    is durable (seq <= the recovered serverSeq), and each session equals its
    start state plus exactly the ops numbered up to that serverSeq: the seen
    ones, and for unseen numbers, toggles that were in flight."""
    rng = random.Random(1234)
    s = Server(args=["--checkpoint-every", "16"]).start()
    try:
        sids = [s.create({"state": {"tracks": [TRACKS[0]]}}) for _ in range(3)]
        for cycle in range(5):
            base, base_seq = {}, {}
            for sid in sids:
                _, headers, body = s.http("GET", f"/api/sessions/{sid}")
                base[sid] = body["state"]["tracks"][0]["steps"]
                base_seq[sid] = int(headers["etag"].strip('"'))
            clients = [(await Client.join(s, sid), sid) for sid in sids for _ in range(2)]
            seen = {sid: {} for sid in sids}  # seq -> step, from any broadcast
            acked = {sid: set() for sid in sids}
            pending = {}  # client index -> step sent and not yet acknowledged

            async def player(k, c, sid):
                try:
                    for _ in range(1000):
                        step = rng.randrange(128)
                        pending[k] = step
                        await c.send({"type": "toggle_step", "trackId": "a", "step": step})
                        while True:
                            m = await c.recv(5)
                            if m.get("type") == "step_toggled":
                                seen[sid][m["seq"]] = m["step"]
                                if m["playerId"] == c.player_id:
                                    acked[sid].add(m["seq"])
                                    del pending[k]
                                    break
                except Exception:
                    return  # the server died under us

            tasks = [asyncio.create_task(player(k, c, sid)) for k, (c, sid) in enumerate(clients)]
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            s.kill9()
            await asyncio.gather(*tasks)
            for c, _ in clients:
                try:
                    await c.ws.close()
                except Exception:
                    pass
            s.start()
            for idx, sid in enumerate(sids):
                _, headers, body = s.http("GET", f"/api/sessions/{sid}")
                durable = int(headers["etag"].strip('"'))
                steps = body["state"]["tracks"][0]["steps"]
                assert all(q <= durable for q in seen[sid]), \
                    f"cycle {cycle}: a client saw an op that is not durable"
                assert all(q <= durable for q in acked[sid])
                cur = list(base[sid])
                missing = 0
                for q in range(base_seq[sid] + 1, durable + 1):
                    if q in seen[sid]:
                        cur[seen[sid][q]] = not cur[seen[sid][q]]
                    else:
                        missing += 1
                inflight = [pending[k] for k in (2 * idx, 2 * idx + 1) if k in pending]
                assert missing <= len(inflight), f"cycle {cycle}: unknown durable ops"
                ok = False
                for mask in range(1 << len(inflight)):
                    if bin(mask).count("1") != missing:
                        continue
                    trial = list(cur)
                    for b, step in enumerate(inflight):
                        if mask >> b & 1:
                            trial[step] = not trial[step]
                    ok = ok or trial == steps
                assert ok, f"cycle {cycle}: state is not the application of ops 1..{durable}"
    finally:
        s.cleanup()


async def test_log_is_trimmed_and_recovery_folds_what_remains():
    """Checkpoints every 10 ops let old log segments be deleted; after kill -9,
    recovery folds the remaining records and starts a fresh log."""
    if CLUSTER:
        raise Skip("the local store's op log (cluster mode keeps ops in PostgreSQL)")
    import os
    s = Server(args=["--checkpoint-every", "10"], env={"GROOVED_LOG_SEGMENT_BYTES": "2048"}).start()
    try:
        sid = s.create({"state": {"tracks": [TRACKS[0]]}})
        c = await Client.join(s, sid)
        for i in range(300):  # one at a time: ~300 commits, ~12 KB of records, ~6 segments
            await c.request({"type": "toggle_step", "trackId": "a", "step": i % 128}, "step_toggled")
        logdir = os.path.join(s.data_dir, "log")
        segs = sorted(os.listdir(logdir))
        assert len(segs) <= 3, f"log not trimmed: {segs}"
        assert int(segs[0].split(".")[0], 16) > 2, f"old segments kept: {segs}"
        _, _, live = s.http("GET", f"/api/sessions/{sid}")
        s.kill9()
        s.start()
        s.wait_log(r"recovery: replayed \d+ log rows into 1 sessions")
        segs = os.listdir(logdir)
        assert len(segs) == 1 and os.path.getsize(os.path.join(logdir, segs[0])) == 0, segs
        _, headers, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"] == live["state"] and headers["etag"] == '"300"'
    finally:
        s.cleanup()


async def test_quiet_live_session_is_checkpointed_so_the_log_can_be_trimmed():
    """A session whose players stay connected but stop editing is checkpointed
    after --checkpoint-idle seconds: it must not pin old op log segments."""
    s = Server(args=["--checkpoint-idle", "1", "--debug-routes", "1"]).start()
    try:
        sid = s.create({"state": {"tracks": [TRACKS[0]]}})
        c = await Client.join(s, sid)
        for i in range(3):
            await c.request({"type": "toggle_step", "trackId": "a", "step": i}, "step_toggled")
        _, _, before = s.http("GET", f"/api/debug/sessions/{sid}")
        assert before["checkpointOpno"] < before["opno"] == 3
        for _ in range(60):
            await c.ws.send(json.dumps({"type": "clock_sync_request", "clientTime": 1}))
            await c.recv_type("clock_sync_response")
            _, _, after = s.http("GET", f"/api/debug/sessions/{sid}")
            if after["checkpointOpno"] == 3:
                break
            await asyncio.sleep(0.1)
        assert after["checkpointOpno"] == after["opno"] == 3, after
        await c.close()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_kill9_after_200_acknowledged_toggles,
         test_quiet_live_session_is_checkpointed_so_the_log_can_be_trimmed,
         test_log_is_trimmed_and_recovery_folds_what_remains,
         test_kill9_at_random_moments_under_load_keeps_a_gapless_prefix])
