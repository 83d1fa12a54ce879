"""grooved backup and grooved verify (issue 12, item 3): a backup taken while
three sessions of two players each keep editing restores every op
acknowledged before it began, each session a gap-free prefix of its ops; the
backup is a data directory a server starts on, with a manifest; verify lists
what it checked, changes nothing, and names the file of each damage."""
import asyncio
import collections
import glob
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import storefiles
from harness import BIN, Client, Server, run

TRACKS = {"state": {"tracks": [{"id": "a", "name": "A", "sampleId": "kick", "steps": []}]}}


def grooved(*args, env=None, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def verify(data_dir):
    return grooved("verify", "--data-dir", data_dir)


def snapshot_files(d):
    """{relative path: sha256} of every file under d (SQLite's -shm index aside)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith("-shm"):
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def state_of(server, sid):
    status, headers, body = server.http("GET", f"/api/sessions/{sid}")
    assert status == 200, (status, body)
    return int(headers["etag"].strip('"')), body["state"]["tracks"][0]["steps"]


def tmpdir():
    return tempfile.mkdtemp(prefix="grooved-backup-")


async def test_backup_under_load_restores_every_acknowledged_op():
    """Three sessions, two players each, toggling as fast as their acks come
    back while the backup runs. Small segments and frequent checkpoints make
    the server rotate and trim the op log meanwhile, and the backup pauses
    (GROOVED_TEST_BACKUP_DELAY_MS) between its snapshot and its copy of the
    log, so segments that its snapshot needs are deleted under it."""
    rng = random.Random(7)
    s = Server(args=["--checkpoint-every", "8"], env={"GROOVED_LOG_SEGMENT_BYTES": "2048"}).start()
    out = tmpdir()
    dest = os.path.join(out, "backup")
    restored = None
    try:
        sids = [s.create(TRACKS) for _ in range(3)]
        base = {sid: state_of(s, sid) for sid in sids}
        clients = [(await Client.join(s, sid), sid) for sid in sids for _ in range(2)]
        seen = {sid: {} for sid in sids}   # seq -> step, from every broadcast any player saw
        acked = {sid: set() for sid in sids}
        refused = collections.Counter()
        stop = asyncio.Event()

        async def player(c, sid):
            for _ in range(3000):  # bounded
                if stop.is_set():
                    return
                seq = await c.send({"type": "toggle_step", "trackId": "a",
                                    "step": rng.randrange(16)})
                while True:
                    m = await c.recv(20)
                    if isinstance(m, dict) and m.get("type") == "step_toggled":
                        seen[sid][m["seq"]] = m["step"]
                        if m.get("clientSeq") == seq and m["playerId"] == c.player_id:
                            acked[sid].add(m["seq"])
                            break
                    if isinstance(m, dict) and m.get("type") == "error" and \
                            m.get("clientSeq") == seq:
                        # Refused, not applied (e.g. RATE_LIMITED: these players
                        # send as fast as their acks come back, past --ws-rate).
                        refused[m.get("code")] += 1
                        await asyncio.sleep(0.01)
                        break

        tasks = [asyncio.create_task(player(c, sid)) for c, sid in clients]
        for _ in range(600):
            if all(len(acked[sid]) >= 40 for sid in sids):
                break
            await asyncio.sleep(0.05)
        assert all(len(acked[sid]) >= 40 for sid in sids), {k: len(v) for k, v in acked.items()}
        before = {sid: max(acked[sid]) for sid in sids}  # acknowledged before the backup began
        count_before = {sid: len(acked[sid]) for sid in sids}
        proc = await asyncio.create_subprocess_exec(
            BIN, "backup", "--data-dir", s.data_dir, "--to", dest,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, GROOVED_TEST_BACKUP_DELAY_MS="1500"))
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
        during = {sid: len(acked[sid]) for sid in sids}
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        for c, _ in clients:
            await c.close()
        print(stdout.decode().strip())
        print(f"toggles refused: {dict(refused)}")
        assert set(refused) <= {"RATE_LIMITED"}, refused
        assert proc.returncode == 0, (stdout.decode(), stderr.decode())
        assert all(during[sid] > count_before[sid] for sid in sids), \
            "the players did not keep editing while the backup ran"
        segs = storefiles.segments(dest)
        assert sum(os.path.getsize(p) for p in segs) > 0, "the backup holds no op log records"

        # The manifest: version, every file's size and CRC-32, every session.
        with open(os.path.join(dest, "backup-manifest.json")) as f:
            manifest = json.load(f)
        assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["grooved_version"]), manifest
        listed = {e["path"]: e for e in manifest["files"]}
        assert set(listed) == {os.path.relpath(p, dest) for p in segs} | {"durable.db", "kv.db"}
        for path, e in listed.items():
            data = storefiles.read_bytes(os.path.join(dest, path))
            assert (len(data), zlib.crc32(data)) == (e["size"], e["crc32"]), path
        in_manifest = {e["id"]: e for e in manifest["sessions"]}
        assert set(in_manifest) == set(sids), manifest["sessions"]

        v = verify(dest)
        assert v.returncode == 0, v.stdout + v.stderr
        assert re.search(r"^ok +backup-manifest\.json: \d+ files have the sizes", v.stdout, re.M)

        # Restore: a server started on the backup.
        restored = Server(data_dir=dest).start()
        for sid in sids:
            durable, steps = state_of(restored, sid)
            assert durable >= before[sid], \
                f"an op acknowledged before the backup began is missing ({durable} < {before[sid]})"
            assert durable == in_manifest[sid]["serverSeq"] == in_manifest[sid]["opno"], \
                (durable, in_manifest[sid])
            seq0, cur = base[sid]
            cur = list(cur)
            for q in range(seq0 + 1, durable + 1):
                assert q in seen[sid], f"op {q} of {sid} was never broadcast"
                cur[seen[sid][q]] = not cur[seen[sid][q]]
            assert steps == cur, f"{sid} is not the application of ops 1..{durable}"
        assert restored.stop() == 0
        v = verify(dest)
        assert v.returncode == 0, v.stdout + v.stderr
        assert "not compared: a grooved has opened this directory" in v.stdout, v.stdout
    finally:
        s.cleanup()
        if restored:
            restored.cleanup()
        shutil.rmtree(out, ignore_errors=True)


async def make_backup(segment_bytes="1024"):
    """A stopped server's data directory with op log records in several
    segments, and its backup. Returns (server, backup directory, session id)."""
    s = Server(env={"GROOVED_LOG_SEGMENT_BYTES": segment_bytes}).start()
    sid = s.create(TRACKS)
    c = await Client.join(s, sid)
    for i in range(60):
        await c.request({"type": "toggle_step", "trackId": "a", "step": i % 16}, "step_toggled")
    await c.close()
    dest = os.path.join(tmpdir(), "backup")
    b = grooved("backup", "--data-dir", s.data_dir, "--to", dest)
    assert b.returncode == 0, b.stdout + b.stderr
    return s, dest, sid


def page_size(db_path):
    return struct.unpack(">H", storefiles.read_bytes(db_path)[16:18])[0]


async def test_verify_lists_its_checks_and_names_each_damaged_file():
    s, dest, sid = await make_backup()
    work = os.path.dirname(dest)
    try:
        s.stop()
        segs = storefiles.segments(dest)
        assert len(segs) >= 3, segs
        clean = verify(dest)
        print(clean.stdout)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        for check in (r"durable\.db: PRAGMA integrity_check: ok",
                      r"KV view: kv\.db: PRAGMA integrity_check: ok",
                      r"log/: \d+ segments, [0-9a-f]{16} to [0-9a-f]{16}, without gaps",
                      r"op log: starts at segment",
                      r"fold: \d+ log records of 1 sessions replay",
                      r"durable\.db: 1 checkpoints read: 1 pass their CRC",
                      r"quarantine: no session set aside",
                      r"backup-manifest\.json: \d+ files have the sizes and CRC-32s"):
            assert re.search(r"^ok +" + check, clean.stdout, re.M), check
        for p in segs:
            n = len([r for r in storefiles.records(p) if r[3] != 0])  # not rotation headers
            name = os.path.relpath(p, dest)
            assert re.search(rf"^ok +{name}: {n} records, \d+ bytes", clean.stdout, re.M), name
        assert re.search(r"^clean: .* passed \d+ checks", clean.stdout, re.M)

        # A flipped byte inside a record of a segment that is not the last.
        bad_log = os.path.join(work, "bad-log")
        shutil.copytree(dest, bad_log)
        seg = storefiles.segments(bad_log)[0]
        off, length, _, _ = storefiles.records(seg)[1]
        storefiles.flip_bit(seg, off + length - 3)
        before = snapshot_files(bad_log)
        v = verify(bad_log)
        assert v.returncode == 1, v.stdout
        name = os.path.relpath(seg, bad_log)
        assert re.search(rf"^DAMAGE +{re.escape(name)}: unreadable record .* at offset {off}\b",
                         v.stdout, re.M), v.stdout
        assert snapshot_files(bad_log) == before, "verify changed the data directory"

        # The last record of the last segment: for recovery that is a torn
        # tail (a warning), but the backup's manifest knows better.
        bad_tail = os.path.join(work, "bad-tail")
        shutil.copytree(dest, bad_tail)
        seg = storefiles.segments(bad_tail)[-1]
        off, length, _, _ = storefiles.records(seg)[-1]
        storefiles.flip_bit(seg, off + length - 1)
        v = verify(bad_tail)
        name = os.path.relpath(seg, bad_tail)
        assert v.returncode == 1, v.stdout
        assert re.search(rf"^warning +{re.escape(name)}: .*torn tail at offset {off}\b", v.stdout,
                         re.M), v.stdout
        assert re.search(rf"^DAMAGE +{re.escape(name)}: differs from backup-manifest\.json",
                         v.stdout, re.M), v.stdout

        # A flipped byte inside the checkpoint's text in durable.db.
        bad_ckpt = os.path.join(work, "bad-ckpt")
        shutil.copytree(dest, bad_ckpt)
        db = os.path.join(bad_ckpt, "durable.db")
        data = storefiles.read_bytes(db)
        assert data.count(b'"tempo"') == 1  # the checkpoint's text (part on an overflow page)
        storefiles.flip_bit(db, data.index(b'"tempo"') + 2)
        v = verify(bad_ckpt)
        assert v.returncode == 1, v.stdout
        assert re.search(rf"^DAMAGE +durable\.db: session {sid}: the checkpoint fails its CRC",
                         v.stdout, re.M), v.stdout

        # A flipped byte in a b-tree page's header: SQLite's own check finds it.
        bad_page = os.path.join(work, "bad-page")
        shutil.copytree(dest, bad_page)
        db = os.path.join(bad_page, "durable.db")
        storefiles.flip_bit(db, page_size(db))  # page 2's type byte
        before = snapshot_files(bad_page)
        v = verify(bad_page)
        assert v.returncode == 1, v.stdout
        assert re.search(r"^DAMAGE +durable\.db: PRAGMA integrity_check: ", v.stdout, re.M), v.stdout
        assert snapshot_files(bad_page) == before, "verify changed the data directory"

        # The source itself (stopped; its LOCK exists, no manifest): clean.
        before = snapshot_files(s.data_dir)
        v = verify(s.data_dir)
        assert v.returncode == 0, v.stdout + v.stderr
        assert re.search(r"^ok +LOCK: held \(shared\) while checking", v.stdout, re.M)
        assert snapshot_files(s.data_dir) == before, "verify changed the data directory"
    finally:
        s.cleanup()
        shutil.rmtree(work, ignore_errors=True)


async def test_verify_refuses_a_running_server_and_checks_a_killed_one():
    s = Server().start()
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        for i in range(10):
            await c.request({"type": "toggle_step", "trackId": "a", "step": i}, "step_toggled")
        v = verify(s.data_dir)
        assert v.returncode == 1 and "in use by a running grooved" in v.stderr, v
        s.kill9()  # the toggles stay in the op log and durable.db's WAL
        before = snapshot_files(s.data_dir)
        assert any(p.endswith("durable.db-wal") for p in before), before
        v = verify(s.data_dir)
        assert v.returncode == 0, v.stdout + v.stderr
        assert re.search(r"^ok +fold: 10 log records of 1 sessions replay", v.stdout, re.M), v.stdout
        assert snapshot_files(s.data_dir) == before, "verify changed the data directory"
        s.start()  # verify held the lock only while it ran
        assert state_of(s, sid)[0] == 10
    finally:
        s.cleanup()


async def test_ops_acknowledged_after_the_last_checkpoint_are_in_the_backup():
    """The snapshot's log_end is where the log ended at its last checkpoint
    transaction; ops acknowledged since are only in the op log, and the
    backup must copy the log as far as it was written, not to log_end."""
    s = Server().start()
    work = tmpdir()
    restored = None
    try:
        sid = s.create(TRACKS)
        c = await Client.join(s, sid)
        for step in (1, 3, 5, 7, 9):
            await c.request({"type": "toggle_step", "trackId": "a", "step": step}, "step_toggled")
        dest = os.path.join(work, "backup")
        b = grooved("backup", "--data-dir", s.data_dir, "--to", dest)
        assert b.returncode == 0, b.stdout + b.stderr
        await c.close()
        restored = Server(data_dir=dest).start()
        seq, steps = state_of(restored, sid)
        assert seq == 5 and [i for i, on in enumerate(steps) if on] == [1, 3, 5, 7, 9], (seq, steps)
    finally:
        s.cleanup()
        if restored:
            restored.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def test_bad_usage_and_targets():
    s = Server().start()
    work = tmpdir()
    try:
        full = os.path.join(work, "full")
        os.mkdir(full)
        with open(os.path.join(full, "keep"), "w") as f:
            f.write("mine")
        b = grooved("backup", "--data-dir", s.data_dir, "--to", full)
        assert b.returncode == 2 and "is not empty" in b.stderr, b
        assert os.listdir(full) == ["keep"]
        empty = os.path.join(work, "empty")
        os.mkdir(empty)
        b = grooved("backup", "--data-dir", s.data_dir, "--to", empty)
        assert b.returncode == 0, b.stdout + b.stderr
        assert os.path.exists(os.path.join(empty, "backup-manifest.json"))
        assert grooved("backup", "--data-dir", s.data_dir).returncode == 2
        assert grooved("backup", "--data-dir", work, "--to", os.path.join(work, "x")).returncode == 2
        assert not os.path.exists(os.path.join(work, "x"))
        assert grooved("verify", "--data-dir", os.path.join(work, "nothing")).returncode == 2
        assert grooved("verify", "--bogus").returncode == 2
        assert grooved("verify", "--help").returncode == 0
        assert grooved("backup", "--help").returncode == 0
    finally:
        s.cleanup()
        shutil.rmtree(work, ignore_errors=True)


async def test_a_quarantined_session_is_backed_up_and_listed():
    s = Server().start()
    work = tmpdir()
    restored = None
    try:
        bad, good = s.create(TRACKS), s.create(TRACKS)
        for sid in (bad, good):
            c = await Client.join(s, sid)
            for i in range(3):
                await c.request({"type": "toggle_step", "trackId": "a", "step": i}, "step_toggled")
            await c.close()
        s.kill9()
        _, text = storefiles.checkpoint(s.data_dir, bad)
        storefiles.set_checkpoint_text(s.data_dir, bad, text[:-7])
        s.args = ["--on-damage", "quarantine"]
        s.start()
        dest = os.path.join(work, "backup")
        b = grooved("backup", "--data-dir", s.data_dir, "--to", dest)
        assert b.returncode == 0, b.stdout + b.stderr
        assert len(glob.glob(os.path.join(dest, "quarantine", bad + ".*", "REPORT"))) == 1
        v = verify(dest)
        assert v.returncode == 0, v.stdout
        assert re.search(rf"^warning +quarantine: session {bad} was set aside", v.stdout, re.M)
        assert re.search(rf"^warning +durable\.db: session {bad}: the checkpoint", v.stdout, re.M)
        restored = Server(data_dir=dest).start()
        assert restored.http("GET", f"/api/sessions/{bad}")[0] == 500
        assert state_of(restored, good)[0] == 3
    finally:
        s.cleanup()
        if restored:
            restored.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run([test_bad_usage_and_targets,
         test_ops_acknowledged_after_the_last_checkpoint_are_in_the_backup,
         test_verify_refuses_a_running_server_and_checks_a_killed_one,
         test_verify_lists_its_checks_and_names_each_damaged_file,
         test_a_quarantined_session_is_backed_up_and_listed,
         test_backup_under_load_restores_every_acknowledged_op])
