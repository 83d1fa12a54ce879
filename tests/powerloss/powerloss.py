"""Power-loss loop: grooved's data directory on lossyfs (a filesystem that
forgets everything not synced), 3 sessions x 2 players toggling steps, and
at a random instant a power cut and SIGKILL of grooved in the same instant
(lossyfs sends the SIGKILL under its own lock while it cuts). Then: unmount,
mount again (the reboot), start grooved (it must start with no repair), and
check for every session that

  - every acknowledged op and every op any client saw is durable
    (its seq <= the recovered serverSeq; serverSeq never goes backwards),
  - the state is the previous state plus exactly the ops numbered up to that
    serverSeq: the seen ones, and for numbers nobody saw, toggles that were
    in flight (sent, not acknowledged) — a gap-free prefix,
  - startup logged no error (a recovery that skipped a gap logs one).

Cycle kinds (they rotate; each also picks torn writes of 0, 512 or 4096):
  random      default settings, cut at a random instant
  trim        2 KiB segments, --checkpoint-every 8: cut right after the
              n-th fsyncdir/unlink in the log directory, while checkpoints
              and trims run
  rotation    1 KiB segments: cut right after a segment is created, or its
              directory fsync'd
  checkpoint  --checkpoint-every 4: cut inside SQLite's commit (after the
              n-th write to durable.db-wal, or its fdatasync)
  evict       --evict-after 0 --hibernate-after 1: players leave and come back,
              or fall silent, so sessions are evicted and hibernate while the
              cut comes
  ioerror     transient I/O errors first (lossyfs `fail`): a failed write or
              fdatasync of the op log, so grooved cuts the failed batch off
              again (and sometimes that cut fails too), a failed SQLite
              commit, a failed directory fsync; then a random cut
  recovery    a random cut, then a second cut inside the crash recovery of
              the next start (its checkpoint commit, the log reset's new
              segment, unlinks and directory fsync, the KV refresh)

In every cycle a REST client also creates sessions now and then; each
created session (its 201 is an acknowledgement) must exist after every
later cut.

Usage: powerloss.py [--cycles N] [--seed S] [--kinds a,b] [--torn 0,512] [--keep-going]
       powerloss.py --expect-loss --unsafe-no-sync [--cycles N]
The second form checks the checker: with grooved's test-only switch that
skips every fsync, the loop must report lost acknowledged ops (or, when torn
writes keep part of what was not synced, a grooved that refuses to start
on the inconsistent result).
"""
import argparse
import asyncio
import itertools
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback

from harness import Client, Server
from lossy import Mount, require_fuse

TRACK = {"id": "a", "name": "A", "sampleId": "kick", "steps": []}

KINDS = {
    "random": {"args": [], "env": {}, "arm": None},
    "trim": {"args": ["--checkpoint-every", "8"],
             "env": {"GROOVED_LOG_SEGMENT_BYTES": "2048"},
             "arm": [("unlink", "/data/log/"), ("fsyncdir", "/data/log")]},
    "rotation": {"args": [], "env": {"GROOVED_LOG_SEGMENT_BYTES": "1024"},
                 "arm": [("create", "/data/log/"), ("fsyncdir", "/data/log")]},
    "checkpoint": {"args": ["--checkpoint-every", "4"], "env": {},
                   "arm": [("write", "/data/durable.db-wal"), ("fdatasync", "/data/durable.db-wal")]},
    "evict": {"args": ["--evict-after", "0", "--hibernate-after", "1", "--checkpoint-idle", "1",
                       "--checkpoint-every", "50"], "env": {}, "arm": None, "churn": True},
    "ioerror": {"args": ["--checkpoint-every", "16"], "env": {"GROOVED_LOG_SEGMENT_BYTES": "4096"},
                "arm": None,
                "fail": [("fdatasync", "/data/log/"), ("write", "/data/log/"),
                         ("fdatasync", "/data/durable.db-wal"), ("fsyncdir", "/data/log")]},
    "recovery": {"args": [], "env": {"GROOVED_LOG_SEGMENT_BYTES": "4096"}, "arm": None,
                 "recovery_arm": [("fdatasync", "/data/durable.db-wal"), ("unlink", "/data/log/"),
                                  ("create", "/data/log/"), ("fsyncdir", "/data/log"),
                                  ("write", "/data/durable.db-wal"), ("write", "/data/kv.db")]},
}


class Loss(AssertionError):
    """What the oracle found: acknowledged ops missing, or a state that is
    not a gap-free prefix."""


def log_errors(server):
    return [line for line in server.read_log().splitlines() if re.search(r"Z error ", line)]


def read_sessions(server, sids):
    out = {}
    for sid in sids:
        status, headers, body = server.http("GET", f"/api/sessions/{sid}")
        if status != 200:
            out[sid] = (status, None, None)
        else:
            out[sid] = (200, int(headers["etag"].strip('"')),
                        body["state"]["tracks"][0]["steps"] if body["state"]["tracks"] else None)
    return out


def check_session(sid, base_steps, base_seq, now, obs, stats):
    """Returns the list of problems of one session after a cut; counts the
    acknowledged ops it lost in stats["lost_acked"]."""
    status, durable, steps = now
    if status != 200:
        stats["lost_acked"] += len(obs["acked"])
        return [f"session {sid}: GET answers {status} (its creation was acknowledged)"]
    problems = []
    acked, seen, uncertain = obs["acked"], obs["seen"], obs["uncertain"]
    lost = sorted(q for q in acked if q > durable)
    stats["lost_acked"] += len(lost)
    if lost:
        problems.append(f"session {sid}: {len(lost)} acknowledged ops lost (seq {lost[:8]}"
                        f"{'...' if len(lost) > 8 else ''}; serverSeq recovered as {durable})")
    unseen_lost = sorted(q for q in seen if q > durable and q not in acked)
    if unseen_lost:
        problems.append(f"session {sid}: ops other clients saw are lost: {unseen_lost[:8]}")
    if durable < base_seq:
        problems.append(f"session {sid}: serverSeq went backwards: {base_seq} -> {durable}")
        return problems
    if steps is None:
        return problems + [f"session {sid}: its track is gone"]
    cur = list(base_steps)
    missing = 0
    for q in range(base_seq + 1, durable + 1):
        if q in seen:
            cur[seen[q]] = not cur[seen[q]]
        else:
            missing += 1
    if missing > len(uncertain):
        problems.append(f"session {sid}: {missing} durable ops nobody saw, but only "
                        f"{len(uncertain)} were in flight")
        return problems
    # The unseen numbers must be filled by in-flight toggles (any order:
    # toggles of distinct ops commute).
    ok = False
    for chosen in itertools.combinations(uncertain, missing):
        trial = list(cur)
        for step in chosen:
            trial[step] = not trial[step]
        if trial == steps:
            ok = True
            break
    if not ok:
        diff = [i for i in range(len(steps)) if steps[i] != cur[i]]
        problems.append(f"session {sid}: state is not ops 1..{durable} applied in order "
                        f"(steps differing from the seen ops: {diff[:16]}, in flight: "
                        f"{uncertain})")
    return problems


class Loop:
    def __init__(self, opts):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.backing = tempfile.mkdtemp(prefix="powerloss-backing-")
        self.mount = None
        self.server = None
        self.sids = []
        self.stats = {"cycles": 0, "acked": 0, "seen": 0, "in_flight": 0, "armed_hit": 0,
                      "recovery_cuts": 0, "created": 0, "injected": 0,
                      "lost_acked": 0, "lost_created": 0, "no_start": 0,
                      "evictions": 0, "hibernations": 0, "torn": 0, "losses": 0, "lossy_cycles": 0}
        self.problems = []
        self.starts = 0
        self.created = {}  # id -> name: sessions created over REST (acknowledged)

    # ---- mount / server ----------------------------------------------------
    def do_mount(self):
        self.mount = Mount(self.backing).mount()

    def do_unmount(self):
        if self.mount:
            m, self.mount = self.mount, None
            m.unmount()

    def start_server(self, kind):
        k = KINDS[kind]
        env = dict(k["env"])
        if self.o.unsafe_no_sync and self.starts > 0:
            # The first run syncs, so the sessions exist: the check is then
            # about the ops each later cycle loses, not the whole directory.
            env["GROOVED_TEST_UNSAFE_NO_SYNC"] = "1"
        self.starts += 1
        self.server = Server(data_dir=self.mount.path("data"), args=k["args"], env=env)
        self.server.start()
        return self.server

    def stop_server(self):
        if self.server:
            s, self.server = self.server, None
            s.cleanup()
            if s.log_path:
                log = s.read_log()
                self.stats["evictions"] += len(re.findall(r": evicted", log))
                self.stats["hibernations"] += len(re.findall(r": hibernated", log))
                os.unlink(s.log_path)

    # ---- one cycle ---------------------------------------------------------
    async def load_until_cut(self, kind, torn, cut_seed):
        """Runs the players until the power goes; returns what they observed."""
        k = KINDS[kind]
        rng = self.rng
        obs = {sid: {"acked": set(), "seen": {}, "uncertain": []} for sid in self.sids}
        pending = {}  # player -> (sid, step) sent and not acknowledged
        failed = []  # (sid, step) answered STORAGE_UNAVAILABLE
        stop = asyncio.Event()
        churn = k.get("churn", False)
        server = self.server

        # Churn: the two players of a session play, then together fall silent
        # (the session hibernates) or leave (it is evicted), then come back.
        phase = {sid: "play" for sid in self.sids}

        async def conductor(sid):
            while not stop.is_set():
                phase[sid] = "play"
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                phase[sid] = rng.choice(["silent", "away"])
                await asyncio.sleep(rng.uniform(2.2, 3.2) if phase[sid] == "silent"
                                    else rng.uniform(0.3, 0.8))

        async def player(p, sid):
            c = None
            try:
                while not stop.is_set():
                    if phase[sid] != "play":
                        if phase[sid] == "away" and c is not None:
                            await c.close()
                            c = None
                        await asyncio.sleep(0.05)
                        continue
                    if c is None:
                        c = await Client.join(server, sid)
                    while phase[sid] == "play":
                        if stop.is_set():
                            return
                        step = rng.randrange(128)
                        pending[p] = (sid, step)
                        seq = await c.send({"type": "toggle_step", "trackId": "a", "step": step})
                        while True:
                            m = await c.recv(10)
                            if not isinstance(m, dict):
                                continue
                            if m.get("type") == "step_toggled":
                                obs[sid]["seen"][m["seq"]] = m["step"]
                                if m.get("clientSeq") == seq and m["playerId"] == c.player_id:
                                    obs[sid]["acked"].add(m["seq"])
                                    del pending[p]
                                    break
                            elif m.get("type") == "error" and m.get("clientSeq") == seq:
                                if m.get("code") == "STORAGE_UNAVAILABLE":
                                    # Not acknowledged; whether it reached the
                                    # disk is unknown (a torn write may keep it).
                                    failed.append((sid, step))
                                del pending[p]  # (RATE_LIMITED: refused, never applied)
                                await asyncio.sleep(0.05)
                                break
            except Exception:
                return  # the server died under us
            finally:
                if c is not None:
                    try:
                        await asyncio.wait_for(c.ws.close(), 2)
                    except Exception:
                        pass

        async def creator():
            try:
                while not stop.is_set() and len(self.created) < 60:
                    await asyncio.sleep(rng.uniform(0.1, 0.6))
                    name = f"c{len(self.created)}"
                    sid = await asyncio.to_thread(
                        server.create, {"name": name, "state": {"tracks": [TRACK]}})
                    self.created[sid] = name
            except Exception:
                return  # the server died under us

        tasks = [asyncio.create_task(player(p, sid))
                 for p, sid in enumerate(s for s in self.sids for _ in range(2))]
        tasks.append(asyncio.create_task(creator()))
        conductors = [asyncio.create_task(conductor(sid)) for sid in self.sids] if churn else []
        pid = server.proc.pid
        cut = f"torn={torn} seed={cut_seed} kill={pid}"
        armed = False
        if k.get("fail"):
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            op, where = rng.choice(k["fail"])
            self.mount.ctl(f"fail {op} {where} {rng.randint(1, 3)} count={rng.randint(1, 3)}")
        if k["arm"] and rng.random() < 0.85:
            op, where = rng.choice(k["arm"])
            self.mount.ctl(f"arm {op} {where} {rng.randint(1, 4)} {cut}")
            armed = True
            deadline = time.time() + (6 if churn else 4)
            while time.time() < deadline and server.proc.poll() is None:
                await asyncio.sleep(0.02)
        else:
            await asyncio.sleep(rng.uniform(0.5, 6.0) if churn else rng.uniform(0.1, 1.5))
        if server.proc.poll() is not None:
            self.stats["armed_hit"] += armed
        else:  # nothing armed, or it did not come: cut now
            try:
                self.mount.ctl(f"cut {cut}")
            except OSError:
                self.stats["armed_hit"] += armed  # the armed cut came in between
        try:
            server.proc.wait(10)
        except Exception:
            server.proc.kill()
            server.proc.wait(10)
        stop.set()
        for t in conductors:
            t.cancel()
        await asyncio.gather(*tasks)
        status = self.mount.status()
        for sid, step in list(pending.values()) + failed:
            obs[sid]["uncertain"].append(step)
        injected = int(re.search(r"injected=(\d+)", status.get("ops", "injected=0")).group(1))
        self.stats["injected"] += injected
        report = status.get("last_cut", "")
        return obs, report + (f"; {injected} injected I/O errors before" if injected else "")

    def cut_during_recovery(self, next_kind, torn):
        """A second power cut while the next start recovers from the first."""
        op, where = self.rng.choice(KINDS["recovery"]["recovery_arm"])
        self.mount.ctl(f"arm {op} {where} 1 torn={torn} seed={self.rng.randrange(1 << 32)}")
        try:
            self.start_server(next_kind)
        except RuntimeError:
            pass  # it could not start on a dead disk: that is the point
        hit = self.mount.dead()
        if not hit:
            self.mount.ctl("disarm")
        self.stop_server()  # SIGKILL
        if hit:
            self.stats["recovery_cuts"] += 1
            print(f"          second cut during recovery: {self.mount.status()['last_cut']}",
                  flush=True)
            self.do_unmount()
            self.do_mount()

    def run_cycle(self, i, kind, next_kind):
        torn = self.o.torn[i % len(self.o.torn)]
        cut_seed = self.rng.randrange(1 << 32)
        base = read_sessions(self.server, self.sids)
        for sid, (status, _, _) in base.items():
            assert status == 200, f"session {sid} unreadable before cycle {i}"
        obs, cut_report = asyncio.run(self.load_until_cut(kind, torn, cut_seed))
        self.stop_server()
        self.do_unmount()
        self.do_mount()  # the reboot
        if KINDS[kind].get("recovery_arm"):
            self.cut_during_recovery(next_kind, torn)
        try:
            server = self.start_server(next_kind)  # must come up with no repair
        except RuntimeError:
            errors = log_errors(self.server) or self.server.read_log().splitlines()[-3:]
            print(f"cycle {i:3d} {kind:10s} torn={torn:<4d} NO START | {cut_report}", flush=True)
            for line in errors:
                print("   " + line, flush=True)
            self.stats["cycles"] += 1
            self.stats["lossy_cycles"] += 1
            self.stats["no_start"] += 1
            self.problems.append(f"cycle {i} ({kind}, torn={torn}): grooved does not start")
            if self.o.expect_loss:
                raise StopIteration
            raise Loss("grooved does not start after the cut (it needs manual repair)")
        startup = [f"startup logged: {line}" for line in log_errors(server)]
        now = read_sessions(server, self.sids)
        problems = []  # data: lost or not a prefix
        for sid in self.sids:
            _, base_seq, base_steps = base[sid]
            problems += check_session(sid, base_steps, base_seq, now[sid], obs[sid], self.stats)
        for sid, name in list(self.created.items()):
            status, _, body = server.http("GET", f"/api/sessions/{sid}")
            if status != 200 or body.get("name") != name:
                problems.append(f"session {sid} created over REST (201) is lost: GET {status}")
                self.stats["lost_created"] += 1
                del self.created[sid]  # reported once
        acked = sum(len(o["acked"]) for o in obs.values())
        seen = sum(len(o["seen"]) for o in obs.values())
        inflight = sum(len(o["uncertain"]) for o in obs.values())
        self.stats["cycles"] += 1
        self.stats["acked"] += acked
        self.stats["seen"] += seen
        self.stats["in_flight"] += inflight
        self.stats["torn"] += torn != 0
        self.stats["created"] = len(self.created) + self.stats["lost_created"]
        durable = {sid: now[sid][1] for sid in self.sids}
        print(f"cycle {i:3d} {kind:10s} torn={torn:<4d} acked={acked:4d} seen={seen:4d} "
              f"in-flight={inflight} serverSeq={list(durable.values())} "
              f"{'LOSS' if problems else 'BAD START' if startup else 'ok'} | {cut_report}",
              flush=True)
        if startup and not self.o.unsafe_no_sync:
            for p in startup:
                print("   " + p, flush=True)
            raise Loss("\n".join(startup))
        if problems:
            self.stats["lossy_cycles"] += 1
            self.stats["losses"] += len(problems)
            self.problems += [f"cycle {i} ({kind}, torn={torn}, cut seed {cut_seed}): {p}"
                              for p in problems]
            for p in problems:
                print("   " + p, flush=True)
            if self.o.expect_loss:
                raise StopIteration
            if not self.o.keep_going or any(now[sid][0] != 200 for sid in self.sids):
                raise Loss("\n".join(problems))  # (without its sessions the loop cannot go on)

    def run(self):
        kinds = self.o.kinds
        t0 = time.time()
        try:
            self.do_mount()
            self.start_server(kinds[0])
            # Sessions are created before the first cut; their 201 is an
            # acknowledgement like any other.
            self.sids = [self.server.create({"state": {"tracks": [TRACK]}}) for _ in range(3)]
            for i in range(self.o.cycles):
                self.run_cycle(i, kinds[i % len(kinds)], kinds[(i + 1) % len(kinds)])
        except StopIteration:
            pass
        finally:
            try:
                self.stop_server()
            finally:
                self.do_unmount()
                shutil.rmtree(self.backing, ignore_errors=True)
        s = self.stats
        print(f"power-loss loop: {s['cycles']} cycles in {time.time() - t0:.0f}s (seed "
              f"{self.o.seed}), {s['acked']} acknowledged ops and {s['seen']} seen ops checked, "
              f"{s['in_flight']} in flight at the cut, {s['created']} sessions created over REST, "
              f"{s['armed_hit']} armed cuts hit, {s['recovery_cuts']} cuts during recovery, "
              f"{s['injected']} injected I/O errors, {s['evictions']} evictions and "
              f"{s['hibernations']} hibernations, "
              f"{s['torn']} cycles with torn writes; {s['lossy_cycles']} cycles lost data "
              f"({s['lost_acked']} acknowledged ops, {s['lost_created']} created sessions; "
              f"{s['no_start']} times grooved would not start)",
              flush=True)
        return s


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kinds", default="random,trim,rotation,checkpoint,evict,ioerror,recovery")
    ap.add_argument("--torn", default="0,512,4096",
                    help="torn-write granularities the cycles take in turn (0: none)")
    ap.add_argument("--keep-going", action="store_true", help="count losses, do not stop")
    ap.add_argument("--unsafe-no-sync", action="store_true",
                    help="run grooved with GROOVED_TEST_UNSAFE_NO_SYNC=1 (skips every fsync)")
    ap.add_argument("--expect-loss", action="store_true",
                    help="succeed only if some cycle loses acknowledged data")
    o = ap.parse_args()
    o.kinds = o.kinds.split(",")
    o.torn = [int(t) for t in o.torn.split(",")]
    if any(t not in (0, 512, 4096) for t in o.torn):
        ap.error("--torn takes 0, 512 and 4096")
    for k in o.kinds:
        if k not in KINDS:
            ap.error(f"unknown kind {k}")
    if o.seed is None:
        o.seed = random.randrange(1 << 31)
    try:
        require_fuse()
    except Exception as e:  # CI has FUSE: its absence is a failure, said loudly
        print(f"FAIL: {e}", flush=True)
        return 1
    try:
        s = Loop(o).run()
    except Loss:
        print("FAIL: acknowledged data lost (see above)", flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL: the power-loss loop could not run", flush=True)
        return 1
    if o.expect_loss:
        if s["lossy_cycles"]:
            print("ok: the loop reports lost acknowledged data (or a grooved that cannot start) "
                  "when grooved does not sync")
            return 0
        print("FAIL: no cycle lost anything, and grooved always started, although it did not "
              "sync: the checker cannot see losses")
        return 1
    return 1 if s["lossy_cycles"] else 0


if __name__ == "__main__":
    sys.exit(main())
