"""Cluster mode behind HAProxy (scripts/cluster up: PostgreSQL primary and
synchronous standby, Redis, three grooved nodes, HAProxy), everything through
the balancer's URL, on one cluster:

- routing: every request naming a session (/api/sessions/{id}, its WebSocket,
  /s/{id}) reaches the node its id hashes to; creates and listings are spread;
  per-address limits see the real client behind HAProxy (X-Forwarded-For from
  the trusted balancer only), and a forged X-Forwarded-For changes nothing;
- kill -9 of the node serving most sessions, under load (30 sessions x 2
  players): every affected player is editing again within a bound (measured:
  p50/p99 printed), with one reconnect each and onto one node per session;
  the other players never notice; every acknowledged op is present and
  serverSeq only grows;
- the killed node comes back: the next request naming each session moves back
  exactly the sessions that hash to it, each player with one reconnect;
  nothing lost;
- a rolling restart of all three nodes under load (scripts/cluster restart:
  the node drains, /healthz 503, HAProxy takes it out, then its players are
  closed with 1012): players see nothing but 1012 closes and reconnects, no
  error, and no acknowledged op is lost.

Each phase edits tracks of its own (t0/t1, t2/t3, t4/t5), and each player
toggles each step of its track once (see balancer_load.py), so the oracle is
exact."""
import asyncio
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import websockets

from balancer_load import Player, percentile
from harness import CLUSTER_SCRIPT as CLUSTER
from harness import cluster_script as cluster
from harness import run

SESSIONS, TRACKS = 30, 6
C = {}  # the cluster: dir, state, port, sessions, owner, victim, acked per session


def state():
    with open(os.path.join(C["dir"], "cluster.json")) as f:
        return json.load(f)


def request(method, path, body=None, headers=None, source=None):
    """One request through the balancer; (status, headers, parsed body)."""
    conn = http.client.HTTPConnection("127.0.0.1", C["port"], timeout=15,
                                      source_address=(source, 0) if source else None)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed


def balancer_sees(node):
    """HAProxy's status of a node (UP, DOWN, ...), from its admin socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(state()["haproxy"]["socket"])
        s.sendall(b"show stat\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    lines = out.decode().lstrip("# ").splitlines()
    cols = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if row.get("pxname") == "nodes" and row.get("svname") == node:
            return row["status"]
    return ""


async def until(cond, timeout, what):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def setup():
    C["dir"] = tempfile.mkdtemp(prefix="grooved-balancer-")
    os.chmod(C["dir"], 0o755)
    # Every test client is 127.0.0.1: loads of sessions moving between nodes would
    # otherwise meet the per-address load limit meant for one person.
    cluster("up", C["dir"], "--nodes", "3", "--node-args", "--load-rate 100000")
    st = state()
    C["port"] = int(st["url"].rsplit(":", 1)[1])
    C["ws"] = "ws" + st["url"][4:]
    tracks = [{"id": f"t{k}", "name": f"T{k}", "sampleId": "kick", "steps": []}
              for k in range(TRACKS)]
    C["sessions"], C["created_on"] = [], []
    for _ in range(SESSIONS):
        status, h, body = request("POST", "/api/sessions", {"state": {"tracks": tracks}})
        assert status == 201, (status, body)
        C["sessions"].append(body["id"])
        C["created_on"].append(h.get("x-grooved-node"))
    C["acked"] = collections.Counter()  # acknowledged toggles per session, all phases


async def ws_node(sid):
    ws = await websockets.connect(f"{C['ws']}/api/sessions/{sid}/ws", open_timeout=10)
    node = ws.response_headers.get("X-Grooved-Node")
    await ws.close()
    return node


async def test_routing_by_session_id():
    st = state()
    names = {n["id"] for n in st["nodes"]}
    assert set(C["created_on"]) == names, f"creates not spread: {C['created_on']}"
    owner = {}
    for sid in C["sessions"]:
        seen = set()
        for path in (f"/api/sessions/{sid}", f"/s/{sid}", f"/api/sessions/{sid}"):
            status, h, _ = request("GET", path)
            assert status == 200, (path, status)
            seen.add(h.get("x-grooved-node"))
        seen.add(await ws_node(sid))
        assert len(seen) == 1 and seen <= names, f"{sid} served by {seen}"
        owner[sid] = seen.pop()
    C["owner"] = owner
    print(f"sessions per node: {dict(collections.Counter(owner.values()))}; "
          f"created per node: {dict(collections.Counter(C['created_on']))}")
    assert len(set(owner.values())) >= 2, "every session hashed to one node"
    listed = {request("GET", "/api/sessions?limit=1")[1].get("x-grooved-node") for _ in range(6)}
    assert len(listed) >= 2, f"listings not spread: {listed}"


def test_limits_see_the_client_behind_the_balancer():
    """Listings from 127.0.0.3, each with a different forged X-Forwarded-For, until
    429: the nodes counted them against 127.0.0.3 (HAProxy appends the address it
    saw; only the balancer's entry is believed). 127.0.0.4 is still served: the
    limit was not the balancer's own address's."""
    refused = 0
    for k in range(1000):
        status, _, _ = request("GET", "/api/sessions?limit=1", source="127.0.0.3",
                            headers={"X-Forwarded-For": f"10.9.{k // 250}.{k % 250}"})
        assert status in (200, 429), status
        refused = refused + 1 if status == 429 else 0
        if refused == 3:  # one from each node, round-robin
            break
    assert refused == 3, "the forged X-Forwarded-For was believed: never limited"
    status, _, body = request("GET", "/api/sessions?limit=1", source="127.0.0.4")
    assert status == 200, f"another client was limited with 127.0.0.3: {status} {body}"


async def load_phase(tracks, action, what):
    """Two players per session on `tracks`, editing while action(players) runs; then
    the oracle. Returns (players, action's result)."""
    players = [Player(C["ws"], sid, t) for sid in C["sessions"] for t in tracks]
    stop = asyncio.Event()
    deadline = time.time() + 150
    tasks = [asyncio.create_task(p.play(stop, deadline)) for p in players]
    try:
        await until(lambda: all(len(p.acked) >= 2 for p in players), 60,
                    f"{what}: every player editing")
        result = await action(players)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    check_oracle(players)
    return players, result


def check_oracle(players):
    by_sid = collections.defaultdict(list)
    for p in players:
        by_sid[p.sid].append(p)
        assert not p.seq_backwards, f"serverSeq went back for {p.sid}: {p.seq_backwards}"
    for sid, ps in by_sid.items():
        status, h, body = request("GET", f"/api/sessions/{sid}")
        assert status == 200, (status, body)
        tracks = {t["id"]: t for t in body["state"]["tracks"]}
        for p in ps:
            on = {k for k, v in enumerate(tracks[p.track]["steps"]) if v}
            lost = set(p.acked) - on
            assert not lost, f"acknowledged toggles lost on {sid}/{p.track}: {sorted(lost)}"
            assert p.committed <= on
            extra = on - p.done() - ({p.pending} if p.pending is not None else set())
            assert not extra, f"steps on that no toggle of {p.track} explains: {extra}"
            C["acked"][sid] += len(p.acked)
        server_seq = int(h["etag"].strip('"'))
        seen = max((s for p in ps for s in p.server_seqs), default=0)
        assert server_seq >= C["acked"][sid] and server_seq >= seen, \
            (sid, server_seq, C["acked"][sid], seen)


async def test_kill_9_a_node_under_load():
    st = state()
    pids = {n["id"]: n["pid"] for n in st["nodes"]}

    async def kill(players):
        owner = {}
        for p in players:
            assert owner.setdefault(p.sid, p.node) == p.node, "a session on two nodes"
        assert owner == C["owner"], "sessions are not where they hash"
        victim = collections.Counter(owner.values()).most_common(1)[0][0]
        affected = [p for p in players if owner[p.sid] == victim]
        t_kill = time.monotonic()
        os.kill(pids[victim], signal.SIGKILL)
        await until(lambda: all(p.first_ack_after(t_kill) for p in affected), 60,
                    "every affected player editing again")
        await asyncio.sleep(1)
        return victim, t_kill, affected

    players, (victim, t_kill, affected) = await load_phase(["t0", "t1"], kill, "kill -9")
    C["victim"] = victim
    times = [p.first_ack_after(t_kill) - t_kill for p in affected]
    ready = [p.first_snapshot_after(t_kill) - t_kill for p in affected]
    print(f"kill -9 {victim}: {len(affected)} of {len(players)} players affected; "
          f"reconnected (snapshot) after p50 {percentile(ready, 50):.3f} s, "
          f"p99 {percentile(ready, 99):.3f} s; editing again (first ack) after "
          f"p50 {percentile(times, 50):.3f} s, p99 {percentile(times, 99):.3f} s, "
          f"max {max(times):.3f} s")
    assert max(times) < 20, f"reconnect took {max(times):.1f} s"
    for p in players:
        if p in affected:
            assert p.reconnects == 1, f"{p.sid}/{p.track}: {p.reconnects} reconnects {p.nodes}"
            assert p.nodes[-1] != victim
        else:
            assert p.reconnects == 0 and not p.closes, f"an unaffected player lost {p.closes}"
    after = {}
    for p in affected:
        assert after.setdefault(p.sid, p.nodes[-1]) == p.nodes[-1], "a session on two nodes"
    # Once HAProxy's checks have the node down, a newcomer to a moved session (a third
    # player, a page load) reaches the node its players went to: nobody is moved twice.
    await until(lambda: balancer_sees(victim).startswith("DOWN"), 30, f"{victim} DOWN")
    for sid, node in after.items():
        status, h, _ = request("GET", f"/api/sessions/{sid}")
        assert status == 200 and h.get("x-grooved-node") == node, \
            f"{sid}: players on {node}, a newcomer sent to {h.get('x-grooved-node')}"


async def test_the_killed_node_comes_back():
    victim = C["victim"]
    mine = {sid for sid, n in C["owner"].items() if n == victim}
    cluster_dir = C["dir"]

    async def comeback(players):
        await asyncio.to_thread(cluster, "restart", cluster_dir, victim)  # waits for UP
        # Nothing moves until a session is asked for; then (a player joining, a
        # page load) the node it hashes to takes it.
        t_visit = time.monotonic()
        served = {sid: request("GET", f"/api/sessions/{sid}")[1].get("x-grooved-node")
                  for sid in C["sessions"]}
        moved = {sid for sid, n in served.items() if n == victim}
        assert moved == mine, f"moved {sorted(moved)}, hashed there {sorted(mine)}"
        back = [p for p in players if p.sid in mine]
        await until(lambda: all(p.node == victim and p.first_ack_after(t_visit)
                                for p in back), 60, "players back on the returned node")
        await asyncio.sleep(1)
        return back

    players, back = await load_phase(["t2", "t3"], comeback, "comeback")
    for p in players:
        if p in back:
            assert p.reconnects == 1, f"{p.sid}/{p.track}: {p.reconnects} reconnects {p.nodes}"
            assert [c for _, c in p.closes] == [1012], p.closes
        else:
            assert p.reconnects == 0 and not p.closes, f"{p.sid} moved: {p.nodes} {p.closes}"
        assert set(p.errors) <= {"SESSION_MOVED"}, p.errors
    print(f"{victim} back: {len(mine)} sessions moved back, one reconnect per player")


async def test_rolling_restart_under_load():
    cluster_dir = C["dir"]
    ids = [n["id"] for n in state()["nodes"]]

    async def rolling(players):
        for node in ids:
            await asyncio.to_thread(cluster, "restart", cluster_dir, node)
        t_end = time.monotonic()
        await until(lambda: all(p.first_ack_after(t_end) for p in players), 60,
                    "every player editing after the restarts")
        return t_end

    started = time.monotonic()
    players, t_end = await load_phase(["t4", "t5"], rolling, "rolling restart")
    codes = collections.Counter(c for p in players for _, c in p.closes)
    errors = [e for p in players for e in p.errors]
    reconnects = sum(p.reconnects for p in players)
    print(f"rolling restart of {len(ids)} nodes in {t_end - started:.1f} s: {reconnects} "
          f"reconnects, closes {dict(codes)}, errors {errors}")
    # Each node was taken out of rotation by its /healthz answering 503 while it
    # drained, before it closed its players (not by connections failing after).
    with open(state()["haproxy"]["log"], errors="replace") as f:
        log = f.read()
    for node in ids:
        assert f"Server nodes/{node} is DOWN, reason: Layer7 wrong status, code: 503" in log, \
            f"HAProxy did not see {node} draining"
    assert set(codes) == {1012}, f"clients saw more than 1012 closes: {dict(codes)}"
    assert not errors, f"clients saw errors: {errors}"
    assert all(p.reconnects >= 1 for p in players), "a player was never moved"


if __name__ == "__main__":
    try:
        setup()
        run([test_routing_by_session_id, test_limits_see_the_client_behind_the_balancer,
             test_kill_9_a_node_under_load, test_the_killed_node_comes_back,
             test_rolling_restart_under_load])
    finally:
        if C.get("dir"):
            subprocess.run([CLUSTER, "down", C["dir"]], capture_output=True, timeout=240)
            shutil.rmtree(C["dir"], ignore_errors=True)
