"""Cluster mode with real processes on loopback (scripts/cluster: a PostgreSQL
primary with a synchronous standby, Redis, three grooved nodes on the
PostgreSQL store):

- takeover: clients edit on node A; a client opens the same session on node B;
  A's players are closed with 1012, reconnect to B and find every op A
  acknowledged;
- fencing: A's batch is held back (the commit-delay fault site) while B takes
  the session: A acknowledges nothing of it and broadcasts nothing;
- kill -9 of a node under load (3 sessions x 2 clients): the clients reconnect to
  another node, every acknowledged op is there and serverSeq goes on;
- PostgreSQL stopped for 5 s, and Redis stopped for 5 s, each under load: refusals
  (STORAGE_UNAVAILABLE, 503) while down, nothing acknowledged lost, service resumes
  by itself;
- failover: under load, the primary is stopped (pg_ctl stop -m immediate) and the
  standby promoted: every op acknowledged before the stop is on the promoted
  server, and the nodes find it by themselves.

Every client toggles each step of its own track once, so the oracle is simple:
every acknowledged step is on at the end, and serverSeq is never behind the
number of acknowledged ops."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import websockets

from harness import CLUSTER_SCRIPT as CLUSTER
from harness import cluster_script as cluster
from harness import TRACK, Server, run

PG_BIN = "/usr/lib/postgresql/15/bin"
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def node_server(node):
    """A harness Server pointed at a running node (for its HTTP helpers)."""
    s = Server(data_dir=node["data_dir"], args=["--store", "x"])
    s.port = node["port"]
    s.log_path = node["log"]
    return s


class Player:
    """A client that toggles the steps of one track once each, in order, and
    reconnects (to the next node) whenever its socket goes away."""

    def __init__(self, nodes, sid, track, start_node):
        self.nodes, self.sid, self.track = nodes, sid, track
        self.at = start_node
        self.acked = set()      # steps acknowledged (step_toggled with our clientSeq)
        self.committed = set()  # steps found on after a reconnect, their ack lost
        self.refused = []       # error codes received
        self.closes = []        # close codes seen
        self.seq = 0
        self.ws = None
        self.reconnects = 0

    def url(self):
        n = self.nodes[self.at % len(self.nodes)]
        return f"ws://127.0.0.1:{n['port']}/api/sessions/{self.sid}/ws"

    async def connect(self, deadline):
        while time.time() < deadline:
            try:
                self.ws = await asyncio.wait_for(websockets.connect(self.url(), max_size=None), 5)
                while True:
                    m = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
                    if m.get("type") == "snapshot":
                        return m
            except Exception:
                self.ws = None
                self.at += 1
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.track}: could not reconnect")

    async def toggle(self, step, deadline):
        """Sends one toggle and waits for its outcome; True when acknowledged, or
        when the snapshot after a reconnect shows it committed (its ack lost with
        the node: every step starts off and is toggled once, so sending it again
        would toggle it back)."""
        if self.ws is None:
            snap = await self.connect(deadline)
            self.reconnects += 1
            steps = next((t["steps"] for t in snap["state"]["tracks"] if t["id"] == self.track),
                         [])
            if step < len(steps) and steps[step]:
                self.committed.add(step)
                return True
        self.seq += 1
        seq = self.seq
        try:
            await self.ws.send(json.dumps({"type": "toggle_step", "trackId": self.track,
                                           "step": step, "seq": seq}))
            while True:
                m = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
                if m.get("clientSeq") == seq:
                    if m.get("type") == "step_toggled":
                        self.acked.add(step)
                        return True
                    if m.get("type") == "error":
                        self.refused.append(m["code"])
                        return False
        except websockets.ConnectionClosed as e:
            self.closes.append(e.code)
            self.ws = None
            self.at += 1
        except (asyncio.TimeoutError, OSError):
            # No answer in 10 s: the message waited (its session reloading while the
            # store was unreachable) longer than this client would.
            self.closes.append("timeout")
            self.ws = None
            self.at += 1
        return False

    async def play(self, steps, deadline, pace=0.0):
        for step in steps:
            while step not in self.acked and step not in self.committed and \
                    time.time() < deadline:
                if not await self.toggle(step, deadline):
                    await asyncio.sleep(0.1)
            if pace:
                await asyncio.sleep(pace)


def check_oracle(node, sid, players):
    s = node_server(node)
    st, _, body = s.http("GET", f"/api/sessions/{sid}")
    assert st == 200, (st, body)
    tracks = {t["id"]: t for t in body["state"]["tracks"]}
    for p in players:
        steps = tracks[p.track]["steps"]
        lost = [k for k in p.acked if not steps[k]]
        assert not lost, f"acknowledged steps lost on {p.track}: {lost}"
        assert all(steps[k] for k in p.committed), (p.track, p.committed)
    return body


async def load(nodes, sessions, per_session, during, steps=40, start=0):
    """3 sessions x 2 players editing while `during` (a coroutine) runs."""
    players = []
    for i, sid in enumerate(sessions):
        for k in range(per_session):
            players.append(Player(nodes, sid, f"t{k}", start + i))
    deadline = time.time() + 90
    # Paced, so that the load spans what `during` does (about 6 s).
    work = [asyncio.create_task(p.play(range(steps), deadline, pace=0.1)) for p in players]
    await during()
    await asyncio.gather(*work)
    return players


def make_sessions(node, n):
    s = node_server(node)
    body = {"state": {"tracks": [dict(TRACK, id="t0"), dict(TRACK, id="t1")]}}
    return [s.create(body) for _ in range(n)]


async def test_cluster_mode():
    d = tempfile.mkdtemp(prefix="grooved-pgcluster-")
    os.chmod(d, 0o755)
    try:
        cluster("up", d, "--nodes", "3")
        with open(os.path.join(d, "cluster.json")) as f:
            st = json.load(f)
        nodes = st["nodes"]
        A, B = nodes[0], nodes[1]

        # ---- takeover -------------------------------------------------------
        sid = make_sessions(A, 1)[0]
        a = Player([A], sid, "t0", 0)
        await a.play(range(10), time.time() + 30)
        assert len(a.acked) == 10
        b = Player([B], sid, "t1", 0)
        snap = await b.connect(time.time() + 20)
        assert snap["state"]["tracks"][0]["steps"][:10] == [True] * 10, "B lacks A's acked ops"
        # A's player is closed with 1012 (the takeover notice, or its next commit's fence).
        try:
            await asyncio.wait_for(a.ws.recv(), 10)
            while True:
                await asyncio.wait_for(a.ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            assert e.code == 1012, e.code
        a.nodes = [B]
        await a.play(range(10, 15), time.time() + 30)
        body = check_oracle(B, sid, [a])
        assert body["state"]["tracks"][0]["steps"][:15] == [True] * 15

        # ---- fencing: A's batch held back while B takes the session -------------
        sid = make_sessions(A, 1)[0]
        a = Player([A], sid, "t0", 0)
        await a.play(range(3), time.time() + 30)
        faults = os.path.join(d, "faults")  # nodes run with GROOVED_TEST_FAULT_DIR (see below)
        assert os.path.isdir(faults), "scripts/cluster must give nodes a fault directory"
        open(os.path.join(faults, "commit-delay"), "w").close()
        try:
            await a.ws.send(json.dumps({"type": "toggle_step", "trackId": "t0", "step": 50,
                                        "seq": 999}))
            await asyncio.sleep(0.5)  # A's commit of step 50 is now held for 2 s
            b = Player([B], sid, "t1", 0)
            snap = await b.connect(time.time() + 20)
        finally:
            os.unlink(os.path.join(faults, "commit-delay"))
        got = []
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(a.ws.recv(), 10)))
        except (websockets.ConnectionClosed, asyncio.TimeoutError):
            pass
        assert not any(m.get("type") == "step_toggled" for m in got), f"A acknowledged: {got}"
        assert any(m.get("type") == "error" and m.get("code") == "SESSION_MOVED" for m in got) \
            or a.ws.close_code == 1012, (got, a.ws.close_code)
        # A third node loads it from PostgreSQL: the fenced op is not there.
        s = node_server(nodes[2])
        _, _, body = s.http("GET", f"/api/sessions/{sid}")
        assert body["state"]["tracks"][0]["steps"][50] is False, "a fenced op was written"
        assert body["state"]["tracks"][0]["steps"][:3] == [True] * 3

        # ---- kill -9 of a node under load ---------------------------------------
        sessions = make_sessions(A, 3)

        async def kill_a():
            await asyncio.sleep(1.5)
            os.kill(A["pid"], signal.SIGKILL)
        players = await load(nodes, sessions, 2, kill_a)
        assert any(p.reconnects for p in players), "nobody had to reconnect"
        for sid in sessions:
            body = check_oracle(B, sid, [p for p in players if p.sid == sid])
        acked = sum(len(p.acked) for p in players)
        assert acked >= 3 * 2 * 40, acked
        nodes = [n for n in nodes if n is not A]

        # ---- PostgreSQL unreachable for 5 s, then Redis for 5 s --------------------
        primary = st["postgres"]["primary"]
        sessions = make_sessions(nodes[0], 3)

        async def pg_down():
            await asyncio.sleep(1)
            subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "stop", "-D", primary["datadir"], "-m",
                                    "fast", "-w"], check=True, timeout=60,
                           stdout=subprocess.DEVNULL)
            await asyncio.sleep(2)
            s = node_server(nodes[0])
            st_, _, _ = s.http("PATCH", f"/api/sessions/{sessions[0]}", {"name": "while down"})
            assert st_ == 503, st_
            await asyncio.sleep(3)
            subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "start", "-D", primary["datadir"], "-l",
                                    os.path.join(d, "pg", "primary.log"), "-w"], check=True,
                           timeout=60, stdout=subprocess.DEVNULL)
        players = await load(nodes, sessions, 2, pg_down, steps=60)
        assert any("STORAGE_UNAVAILABLE" in p.refused or p.closes for p in players), \
            "nothing noticed PostgreSQL being down"
        for sid in sessions:
            check_oracle(nodes[0], sid, [p for p in players if p.sid == sid])

        redis = st["redis"]
        sessions = make_sessions(nodes[0], 3)

        async def redis_down():
            await asyncio.sleep(1)
            os.kill(redis["pid"], signal.SIGSTOP)
            await asyncio.sleep(5)
            os.kill(redis["pid"], signal.SIGCONT)
        players = await load(nodes, sessions, 2, redis_down, steps=60)
        for sid in sessions:
            check_oracle(nodes[0], sid, [p for p in players if p.sid == sid])
        assert not any(p.refused for p in players), "Redis down must not refuse edits"

        # ---- failover: the primary dies, the standby is promoted ---------------------
        standby = st["postgres"]["standby"]
        sessions = make_sessions(nodes[0], 3)

        async def failover():
            await asyncio.sleep(1.5)
            subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "stop", "-D", primary["datadir"], "-m",
                                    "immediate", "-w"], check=True, timeout=60,
                           stdout=subprocess.DEVNULL)
            subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "promote", "-D", standby["datadir"],
                                    "-w"], check=True, timeout=60, stdout=subprocess.DEVNULL)
        players = await load(nodes, sessions, 2, failover, steps=60)
        for sid in sessions:
            check_oracle(nodes[0], sid, [p for p in players if p.sid == sid])
        # Every op acknowledged is on the promoted server itself.
        out = subprocess.run(["psql", "-At", "-h", "127.0.0.1", "-p", str(standby["port"]),
                              "-U", "grooved", "-d", "grooved", "-c",
                              "SELECT count(*) FROM grooved_sessions"],
                             capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, PGPASSWORD="grooved"))
        assert out.returncode == 0 and int(out.stdout.strip()) > 0, out
    finally:
        subprocess.run([CLUSTER, "down", d], capture_output=True, timeout=240)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run([test_cluster_mode])
