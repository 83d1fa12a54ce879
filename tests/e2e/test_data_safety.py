"""Data safety (issue 9): no acknowledged change is lost to bad input or a
damaged file. Stored data that cannot be read fails loudly and is never
written over; recovery refuses or quarantines what it cannot fold; a bad
record is a torn tail only at the very end of the log; a failed cut never
brings back rolled-back ops; KV views catch up even after eviction; state-
dependent refusals wait for the output gate; a trickling session cannot pin
the log; shutdown joins the storage threads first; upper-case ids make no
phantom sessions; out-of-memory paths fail safe; a new data directory is
durable."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import storefiles
from harness import TRACK, Client, Server, run

TRACKS = {"state": {"tracks": [TRACK, dict(TRACK, id="t2", name="Snare", sampleId="snare")]}}


def deep(n):
    return "[" * n + "]" * n


def ws_frame(text):
    """One masked client text frame, for writing several in one TCP write."""
    payload = text.encode()
    mask = os.urandom(4)
    head = bytearray([0x81])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += struct.pack(">H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack(">Q", n)
    return bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def fault_dir():
    return tempfile.mkdtemp(prefix="grooved-faults-")


def set_fault(d, site, on=True):
    path = os.path.join(d, site)
    if on:
        open(path, "w").close()
    elif os.path.exists(path):
        os.unlink(path)


def start_fails(s):
    """Starts s expecting grooved to refuse; returns (exit code, log)."""
    try:
        s.start()
    except RuntimeError:
        s.proc.wait(20)
        return s.proc.returncode, s.read_log()
    raise AssertionError("grooved started on damaged data:\n" + s.read_log()[-2000:])


async def toggles(c, steps, track="t1"):
    for step in steps:
        ack = await c.request({"type": "toggle_step", "trackId": track, "step": step}, "step_toggled")
        assert ack["type"] == "step_toggled", ack


# ---- item 1 --------------------------------------------------------------

async def test_a_deeply_nested_lock_cannot_wipe_the_session():
    """A lock nested 2,043 deep used to be stored verbatim, made the stored
    record unreadable, and the next load started from defaults."""
    s = Server().start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        await toggles(c, [0, 1, 2])
        raw = ('{"type":"add_track","seq":99,"track":{"id":"d","name":"D","sampleId":"kick",'
               '"steps":[true],"parameterLocks":[{"pitch":1,"x":%s}]}}' % deep(2043))
        await c.ws.send(raw)
        added = await c.recv_type("track_added")
        assert added["track"]["parameterLocks"][0] == {"pitch": 1}, added["track"]["parameterLocks"][0]
        # The REST path: a create and a PUT with the same kind of lock.
        body = ('{"state":{"tracks":[{"id":"x","name":"X","sampleId":"kick","steps":[true],'
                '"parameterLocks":[{"volume":0.5,"x":%s}]}]}}' % deep(2041))
        st, _, created = s.http("POST", "/api/sessions", raw=body.encode(),
                                headers={"Content-Type": "application/json"})
        assert st == 201, (st, created)
        seq_before = (await c.request({"type": "toggle_step", "trackId": "t1", "step": 5},
                                      "step_toggled"))["seq"]
        await c.close()
        assert s.stop() == 0
        s.start()
        st, _, got = s.http("GET", f"/api/sessions/{sid}")
        assert st == 200, (st, got)
        ids = [t["id"] for t in got["state"]["tracks"]]
        assert ids == ["t1", "t2", "d"], ids
        assert got["state"]["tracks"][0]["steps"][:6] == [True, True, True, False, False, True]
        c = await Client.join(s, sid)
        nxt = await c.request({"type": "toggle_step", "trackId": "t1", "step": 6}, "step_toggled")
        assert nxt["seq"] == seq_before + 1, (nxt, seq_before)
        st, _, other = s.http("GET", f"/api/sessions/{created['id']}")
        assert st == 200 and other["state"]["tracks"][0]["parameterLocks"][0] == {"volume": 0.5}
        await c.close()
    finally:
        s.cleanup()


async def test_an_unreadable_checkpoint_fails_the_load_and_is_never_overwritten():
    s = Server(args=["--evict-after", "1"]).start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        await toggles(c, [0, 3])
        await c.close()
        assert s.stop() == 0
        s.start()  # recovery folds the log and empties it: the checkpoint alone holds the session
        assert s.stop() == 0
        assert not storefiles.all_records(s.data_dir)
        _, good = storefiles.checkpoint(s.data_dir, sid)
        for damaged in (good[: len(good) // 2],  # does not parse
                        good.replace('"tempo":120', '"tempo":121')):  # parses; CRC catches it
            storefiles.set_checkpoint_text(s.data_dir, sid, damaged)
            s.start()
            st, _, body = s.http("GET", f"/api/sessions/{sid}")
            assert st == 500 and "cannot be read" in body["message"], (st, body)
            assert re.search(rf"error session {sid}: stored data cannot be read", s.read_log())
            # A player hears why, and the socket closes with 1011.
            ws = await asyncio.wait_for(__import__("websockets").connect(s.ws_url(sid)), 10)
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert msg["type"] == "error" and msg["code"] == "SESSION_UNAVAILABLE", msg
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except Exception:
                pass
            assert ws.close_code == 1011, ws.close_code
            assert s.stop() == 0
            assert storefiles.checkpoint(s.data_dir, sid)[1] == damaged, "the row was written over"
    finally:
        s.cleanup()


def test_an_unreadable_kv_value_fails_the_load():
    """A session known only to the KV view whose value does not parse is an
    error, not a fresh default session."""
    s = Server().start()
    try:
        sid = s.create(TRACKS)
        assert s.stop() == 0
        import sqlite3
        other = "0f2504e0-4f89-41d3-9a0c-0305e82c3301"
        db = sqlite3.connect(os.path.join(s.data_dir, "kv.db"))
        db.execute("INSERT INTO kv(id, updated_at, value) VALUES(?, 1, ?)", (other, '{"id":"' + other + '","state":{'))
        db.commit()
        db.close()
        s.start()
        st, _, body = s.http("GET", f"/api/sessions/{other}")
        assert st == 500, (st, body)
        assert s.http("GET", f"/api/sessions/{sid}")[0] == 200
    finally:
        s.cleanup()


# ---- item 2 --------------------------------------------------------------

async def test_recovery_refuses_or_quarantines_what_it_cannot_fold():
    s = Server().start()
    try:
        bad = s.create(TRACKS)
        good = s.create(TRACKS)
        a = await Client.join(s, bad)
        b = await Client.join(s, good)
        await toggles(a, [0, 1, 2, 3])
        await toggles(b, [4, 5])
        s.kill9()  # the toggles stay in the op log, after the checkpoints
        assert any(r[3] == bad for r in storefiles.all_records(s.data_dir))
        _, text = storefiles.checkpoint(s.data_dir, bad)
        storefiles.set_checkpoint_text(s.data_dir, bad, text[:-7])
        before = {p: storefiles.read_bytes(p) for p in storefiles.segments(s.data_dir)}
        code, log = start_fails(s)
        assert code == 1, code
        assert re.search(rf"session {bad} cannot be recovered: the checkpoint (does not parse|fails its CRC)",
                         log), log[-2000:]
        assert "--on-damage quarantine" in log
        after = {p: storefiles.read_bytes(p) for p in storefiles.segments(s.data_dir)}
        assert after == before, "a refused recovery must change nothing"
        assert storefiles.checkpoint(s.data_dir, bad)[1] == text[:-7]

        s.args = ["--on-damage", "quarantine"]
        s.start()
        q = os.listdir(os.path.join(s.data_dir, "quarantine"))
        assert len(q) == 1 and q[0].startswith(bad), q
        qdir = os.path.join(s.data_dir, "quarantine", q[0])
        assert storefiles.read_bytes(os.path.join(qdir, "checkpoint.json")).decode() == text[:-7]
        recs = storefiles.records(os.path.join(qdir, "records.log"))
        assert [r[3] for r in recs] == [1, 2, 3, 4], recs
        assert re.search(r"why: the checkpoint (does not parse|fails its CRC)",
                         storefiles.read_bytes(os.path.join(qdir, "REPORT")).decode())
        st, _, body = s.http("GET", f"/api/sessions/{bad}")
        assert st == 500, (st, body)
        st, _, body = s.http("GET", f"/api/sessions/{good}")
        assert st == 200 and body["state"]["tracks"][0]["steps"][4:6] == [True, True]
        assert s.stop() == 0
        s.args = []
        s.start()  # set aside: a normal start works and the session still answers 500
        assert s.http("GET", f"/api/sessions/{bad}")[0] == 500
    finally:
        s.cleanup()


# ---- item 3 --------------------------------------------------------------

async def test_a_flipped_bit_inside_the_log_is_not_a_torn_tail():
    s = Server().start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        for i in range(100):  # one record per acknowledged op
            await toggles(c, [i % 64], track="t1" if i < 64 else "t2")
        s.kill9()
        recs = [r for r in storefiles.all_records(s.data_dir) if r[3] == sid]
        assert len(recs) == 100, len(recs)
        path, off = recs[9][0], recs[9][1]
        storefiles.flip_bit(path, off + 30)
        before = storefiles.read_bytes(path)
        code, log = start_fails(s)
        assert code == 1
        assert re.search(rf"op log is damaged: {re.escape(path)} at offset {off}: unreadable record "
                         "followed by intact records", log), log[-2000:]
        assert storefiles.read_bytes(path) == before, "nothing may be cut"
        # The same flip in the very last record is a torn tail: dropped, start.
        storefiles.flip_bit(path, off + 30)
        last = storefiles.all_records(s.data_dir)[-1]
        storefiles.flip_bit(last[0], last[1] + 30)
        s.start()
        st, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert st == 200 and body["state"]["tracks"][0]["steps"][:64] == [True] * 64
    finally:
        s.cleanup()


async def test_a_load_that_cannot_replay_every_record_fails():
    """A reload (after a failed commit) that meets a damaged record below the
    durable end must fail, not go live truncated."""
    faults = fault_dir()
    s = Server(env={"GROOVED_FAULT_FILE": os.path.join(faults, "commit")}).start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        await toggles(c, [0, 1, 2, 3])
        recs = [r for r in storefiles.all_records(s.data_dir) if r[3] == sid]
        storefiles.flip_bit(recs[1][0], recs[1][1] + 30)  # op 2 rots on disk
        set_fault(faults, "commit")
        reply = await c.request({"type": "toggle_step", "trackId": "t1", "step": 9}, "step_toggled")
        assert reply["code"] == "STORAGE_UNAVAILABLE", reply
        err = await c.recv_type("error")
        assert err["code"] == "SESSION_UNAVAILABLE", err
        assert re.search(rf"session {sid}: stored data cannot be read, load refused: op log damaged",
                         s.read_log())
        set_fault(faults, "commit", False)
        assert s.http("GET", f"/api/sessions/{sid}")[0] == 500
    finally:
        s.cleanup()
        shutil.rmtree(faults, ignore_errors=True)


# ---- item 4 --------------------------------------------------------------

async def test_a_failed_cut_never_brings_back_rolled_back_ops():
    faults = fault_dir()
    s = Server(args=["--checkpoint-every", "2"], env={"GROOVED_TEST_FAULT_DIR": faults}).start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        await toggles(c, [0])
        set_fault(faults, "checkpoint-commit")  # the batch fails after its op was appended
        set_fault(faults, "log-truncate")  # ... and it cannot be cut back off the log
        reply = await c.request({"type": "toggle_step", "trackId": "t1", "step": 1}, "step_toggled")
        assert reply["code"] == "STORAGE_UNAVAILABLE", reply
        snap = await c.recv_type("snapshot")  # reloaded from the durable store
        assert snap["state"]["tracks"][0]["steps"][:2] == [True, False], snap["state"]["tracks"][0]["steps"][:2]
        set_fault(faults, "checkpoint-commit", False)
        set_fault(faults, "log-truncate", False)
        await toggles(c, [3])
        s.kill9()
        s.args = []
        s.start()
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tracks"][0]["steps"][:4] == [True, False, False, True]
    finally:
        s.cleanup()
        shutil.rmtree(faults, ignore_errors=True)


# ---- item 5 --------------------------------------------------------------

async def test_a_failed_kv_write_catches_up_after_eviction_and_restart():
    fault = tempfile.mktemp(prefix="grooved-kvfault-")
    s = Server(args=["--evict-after", "1"], env={"GROOVED_KV_FAULT_FILE": fault}).start()
    try:
        sid = s.create(TRACKS)
        open(fault, "w").close()
        c = await Client.join(s, sid)
        await toggles(c, [7])
        await c.close()
        s.wait_log(rf"session {sid}: KV view write failed")
        s.wait_log(rf"session {sid}: evicted")
        time.sleep(1.5)
        os.unlink(fault)
        s.wait_log(rf"session {sid}: KV view written \(opno 1\)", timeout=40)
        assert json.loads(storefiles.kv_value(s.data_dir, sid))["state"]["tracks"][0]["steps"][7]
        # Behind at shutdown: rewritten at the next start.
        open(fault, "w").close()
        c = await Client.join(s, sid)
        await toggles(c, [8])
        await c.close()
        s.wait_log(rf"session {sid}: KV view write failed.*attempt 1")
        assert s.stop() == 0
        os.unlink(fault)
        s.start()
        s.wait_log(rf"session {sid}: KV view written \(opno 2\)", timeout=20)
        assert json.loads(storefiles.kv_value(s.data_dir, sid))["state"]["tracks"][0]["steps"][8]
    finally:
        if os.path.exists(fault):
            os.unlink(fault)
        s.cleanup()


# ---- item 6 --------------------------------------------------------------

async def test_refusals_and_playback_wait_for_the_commit_they_depend_on():
    fault = tempfile.mktemp(prefix="grooved-fault-")
    s = Server(env={"GROOVED_FAULT_FILE": fault}).start()
    try:
        sid = s.create(TRACKS)
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        open(fault, "w").close()
        # Both in one TCP write: the second is refused on the first's state,
        # which is never committed.
        a.ws.transport.write(
            ws_frame(json.dumps({"type": "delete_track", "trackId": "t1", "seq": 1}))
            + ws_frame(json.dumps({"type": "toggle_step", "trackId": "t1", "step": 0, "seq": 2}))
            + ws_frame(json.dumps({"type": "set_tempo", "tempo": 150, "seq": 3}))
            + ws_frame(json.dumps({"type": "play"})))
        got = {}
        deadline = time.time() + 10
        while len(got) < 3 and time.time() < deadline:
            m = await a.recv()
            if isinstance(m, dict) and m.get("type") == "error":
                got[m["clientSeq"]] = m["code"]
        assert got == {1: "STORAGE_UNAVAILABLE", 2: "STORAGE_UNAVAILABLE", 3: "STORAGE_UNAVAILABLE"}, got
        seen = []
        try:
            while True:
                seen.append(await b.recv(timeout=1.0))
        except asyncio.TimeoutError:
            pass
        for m in seen:
            assert not (isinstance(m, dict) and m.get("tempo") == 150), f"b saw uncommitted tempo: {m}"
        snaps = [m for m in seen if isinstance(m, dict) and m.get("type") == "snapshot"]
        assert snaps and snaps[-1]["state"]["tempo"] == 120
        assert snaps[-1]["playingPlayerIds"] == [a.player_id], snaps[-1]["playingPlayerIds"]
    finally:
        if os.path.exists(fault):
            os.unlink(fault)
        s.cleanup()


# ---- item 7 --------------------------------------------------------------

async def test_a_trickling_session_cannot_pin_the_log():
    s = Server(args=["--checkpoint-idle", "3600", "--checkpoint-max-age", "3600", "--ws-rate", "100000"],
               env={"GROOVED_LOG_SEGMENT_BYTES": "4096"}).start()
    try:
        slow = s.create(TRACKS)
        busy = s.create(TRACKS)
        a = await Client.join(s, slow)
        await toggles(a, [0])  # one op, then silence: never idle-checkpointed
        b = await Client.join(s, busy)
        most = 0
        for i in range(1000):
            await toggles(b, [i % 16])
            most = max(most, len(storefiles.segments(s.data_dir)))
        assert most <= 5, f"the op log grew to {most} segments"
    finally:
        s.cleanup()


async def test_ops_never_stay_out_of_a_checkpoint_longer_than_the_max_age():
    s = Server(args=["--checkpoint-idle", "3600", "--checkpoint-max-age", "2",
                     "--debug-routes", "1"]).start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        deadline = time.time() + 12
        ckpt = 0
        i = 0
        while time.time() < deadline and ckpt == 0:
            await toggles(c, [i % 16])  # an op every 0.3 s: never quiet for long
            i += 1
            await asyncio.sleep(0.3)
            ckpt = s.http("GET", f"/api/debug/sessions/{sid}")[2]["checkpointOpno"]
        assert ckpt > 0, "a trickling session was never checkpointed"
    finally:
        s.cleanup()


# ---- item 8 --------------------------------------------------------------

def test_shutdown_waits_for_a_slow_storage_job():
    """A load still running when shutdown gives up waiting for storage (15 s):
    its wake-up must not reach a destroyed lws context. The read of freed
    memory happens inside libwebsockets, which ASan does not instrument, so
    this runs the uninstrumented build under valgrind."""
    plain = os.environ.get("GROOVED_PLAIN_BIN", "")
    if not os.path.exists(plain) or not shutil.which("valgrind"):
        raise AssertionError("needs valgrind and GROOVED_PLAIN_BIN (make test builds build-plain)")
    vg = ["valgrind", "-q", "--error-exitcode=9"]
    s = Server(env={"GROOVED_TEST_LOAD_DELAY_MS": "16500", "GROOVED_BIN_OVERRIDE": ""})
    try:
        import harness
        saved, harness.BIN = harness.BIN, plain
        try:
            s.start(wrapper=vg)
            sid = s.create(TRACKS)
            assert s.stop(60) == 0
            s.start(wrapper=vg)  # sid is known but not in memory: a GET loads it (slowly)
        finally:
            harness.BIN = saved
        conn = socket.create_connection(("127.0.0.1", s.port))
        conn.sendall(f"GET /api/sessions/{sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(1)
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(90)
        log = s.read_log()
        assert "storage did not settle" in log, log[-2000:]
        assert "Invalid read" not in log, log[-4000:]
        assert s.proc.returncode == 0, (s.proc.returncode, log[-3000:])
        conn.close()
    finally:
        s.cleanup()


# ---- item 9 --------------------------------------------------------------

def test_upper_case_ids_make_no_phantom_session():
    s = Server(args=["--debug-routes", "1"]).start()
    try:
        sid = s.create(TRACKS)
        assert s.http("GET", f"/api/debug/sessions/{sid}")[0] == 200
        st, _, _ = s.http("GET", f"/api/debug/sessions/{sid.upper()}")
        assert st == 404, st
        st, _, body = s.http("GET", f"/api/sessions?limit=1&cursor=9999999999999.{sid.upper()}")
        assert st == 200, (st, body)
        _, _, text = s.http("GET", "/metrics")
        live = re.search(r'^grooved_sessions\{state="live"\} (\d+)', text, re.M).group(1)
        assert live == "1", live
    finally:
        s.cleanup()


# ---- item 10 -------------------------------------------------------------

async def test_a_load_that_cannot_be_allocated_tells_the_player():
    faults = fault_dir()
    s = Server(args=["--hibernate-after", "1"], env={"GROOVED_TEST_FAULT_DIR": faults}).start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        await toggles(c, [0])
        s.wait_log(rf"session {sid}: hibernated", timeout=20)
        set_fault(faults, "load-job")
        await c.send({"type": "toggle_step", "trackId": "t1", "step": 1})
        err = await c.recv_type("error")
        assert err["code"] == "STORAGE_UNAVAILABLE", err
        try:
            await c.recv(timeout=5)
        except Exception:
            pass
        assert c.ws.close_code == 1011, c.ws.close_code
        set_fault(faults, "load-job", False)
        st, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert st == 200 and body["state"]["tracks"][0]["steps"][:2] == [True, False]
    finally:
        s.cleanup()
        shutil.rmtree(faults, ignore_errors=True)


async def test_a_broadcast_that_cannot_be_allocated_resyncs_the_players():
    faults = fault_dir()
    s = Server(env={"GROOVED_TEST_FAULT_DIR": faults}).start()
    try:
        sid = s.create(TRACKS)
        a = await Client.join(s, sid)
        b = await Client.join(s, sid)
        set_fault(faults, "broadcast")
        await a.send({"type": "toggle_step", "trackId": "t1", "step": 2})
        for c in (a, b):
            err = await c.recv_type("error")
            assert err["code"] == "STORAGE_UNAVAILABLE", err
            try:
                await c.recv(timeout=5)
            except Exception:
                pass
            assert c.ws.close_code == 1011, c.ws.close_code
        set_fault(faults, "broadcast", False)
        c = await Client.join(s, sid)  # the reconnect sees the committed toggle
        assert c.snapshot["state"]["tracks"][0]["steps"][2] is True
    finally:
        s.cleanup()
        shutil.rmtree(faults, ignore_errors=True)


# ---- item 11 -------------------------------------------------------------

def test_a_new_data_directory_is_made_durable():
    if not shutil.which("strace"):
        raise AssertionError("strace is required (make test installs it)")
    parent = tempfile.mkdtemp(prefix="grooved-parent-")
    trace = os.path.join(parent, "trace.txt")
    data = os.path.join(parent, "data")
    s = Server(data_dir=data, env={"ASAN_OPTIONS": "detect_leaks=0"})
    s.start(wrapper=["strace", "-f", "-o", trace, "-e", "trace=mkdir,mkdirat,openat,open,fsync,close"])
    try:
        s.create(TRACKS)
        with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
            os.kill(int(f.read().split()[0]), signal.SIGTERM)
        s.proc.wait(30)
        lines = open(trace).read().splitlines()

        def synced_after(created, dirpath):
            i = next(i for i, l in enumerate(lines) if re.search(r'mkdir(at)?\(.*"%s"' % re.escape(created), l))
            fds = set()
            for l in lines[i + 1:]:
                m = re.search(r'open(at)?\(.*"%s".*O_DIRECTORY.*= (\d+)' % re.escape(dirpath), l)
                if m:
                    fds.add(m.group(2))
                m = re.search(r"fsync\((\d+)\)\s+= 0", l)
                if m and m.group(1) in fds:
                    return True
            return False

        assert synced_after(data, parent), "the new data directory's entry was never made durable"
        assert synced_after(data + "/log", data), "the new log/ directory's entry was never made durable"
    finally:
        s.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    run([test_a_deeply_nested_lock_cannot_wipe_the_session,
         test_an_unreadable_checkpoint_fails_the_load_and_is_never_overwritten,
         test_an_unreadable_kv_value_fails_the_load,
         test_recovery_refuses_or_quarantines_what_it_cannot_fold,
         test_a_flipped_bit_inside_the_log_is_not_a_torn_tail,
         test_a_load_that_cannot_replay_every_record_fails,
         test_a_failed_cut_never_brings_back_rolled_back_ops,
         test_a_failed_kv_write_catches_up_after_eviction_and_restart,
         test_refusals_and_playback_wait_for_the_commit_they_depend_on,
         test_a_trickling_session_cannot_pin_the_log,
         test_ops_never_stay_out_of_a_checkpoint_longer_than_the_max_age,
         test_shutdown_waits_for_a_slow_storage_job,
         test_upper_case_ids_make_no_phantom_session,
         test_a_load_that_cannot_be_allocated_tells_the_player,
         test_a_broadcast_that_cannot_be_allocated_resyncs_the_players,
         test_a_new_data_directory_is_made_durable])
