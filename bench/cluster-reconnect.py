#!/usr/bin/python3
"""Reconnect time after a node is killed, through the balancer (docs/BENCHMARKS.md,
"1 node vs 3 nodes behind HAProxy").

  bench/cluster-reconnect.py DIR [--kills K] [--sessions S] [--json] [--json-out FILE]

DIR holds a running cluster (scripts/cluster up DIR --nodes 3). S sessions (default 30)
are created through the balancer, each with two players (tests/e2e/balancer_load.Player:
each toggles the steps of its own track at 4 per second and, when its socket goes away,
reconnects through the balancer at once, reads the snapshot and goes on). Once every
player is editing, the node serving the most sessions is killed with SIGKILL; for each
player of a session it served, the time from the kill to its first snapshot after it
(connected again) and to its first acknowledged toggle after it (editing again) is
recorded. The killed node is then restarted (scripts/cluster restart DIR NODE, which
waits until HAProxy has it UP again) and the next round starts on fresh tracks. K rounds
(default 3). It also checks that no acknowledged toggle is missing afterwards.
"""
import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from balancer_load import Player, percentile  # noqa: E402

CLUSTER = os.path.join(ROOT, "scripts", "cluster")


def state(d):
    with open(os.path.join(d, "cluster.json")) as f:
        return json.load(f)


def request(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=15) as r:
        return r.status, json.loads(r.read())


async def until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster-reconnect: not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def one_round(d, sessions, tracks):
    st = state(d)
    base = st["url"]
    ws = "ws" + base[4:]
    players = [Player(ws, sid, t) for sid in sessions for t in tracks]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.play(stop, time.time() + 120)) for p in players]
    try:
        await until(lambda: all(len(p.acked) >= 2 for p in players), 60, "every player editing")
        owner = {p.sid: p.node for p in players}
        victim = collections.Counter(owner.values()).most_common(1)[0][0]
        pid = next(n["pid"] for n in st["nodes"] if n["id"] == victim)
        affected = [p for p in players if owner[p.sid] == victim]
        t_kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(lambda: all(p.first_ack_after(t_kill) for p in affected), 60,
                    "every affected player editing again")
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    ready = [p.first_snapshot_after(t_kill) - t_kill for p in affected]
    editing = [p.first_ack_after(t_kill) - t_kill for p in affected]
    # The oracle: every acknowledged toggle is on (each player owns its track's steps).
    lost = 0
    for sid in sessions:
        _, body = request(f"{base}/api/sessions/{sid}")
        steps = {t["id"]: t["steps"] for t in body["state"]["tracks"]}
        for p in players:
            if p.sid == sid:
                lost += sum(1 for s in p.acked if not steps[p.track][s])
    # The slow ones, and what they went through (closes, errors, nodes, reconnects).
    p50 = percentile(editing, 50)
    slow = [{"session": p.sid[:8], "track": p.track, "editing_s": round(e, 3),
             "ready_s": round(r, 3), "reconnects": p.reconnects,
             "closes": [c for t, c in p.closes if t > t_kill], "errors": p.errors,
             "nodes": p.nodes, "connect_failures": p.connect_failures}
            for p, e, r in zip(affected, editing, ready) if e > max(0.5, 3 * p50)]
    other = [p for p in players if p not in affected]
    disturbed = sum(1 for p in other if p.closes)
    subprocess.run([CLUSTER, "restart", d, victim], check=True, capture_output=True,
                   timeout=120)
    return {"victim": victim, "sessions_on_victim": len({p.sid for p in affected}),
            "affected": len(affected), "players": len(players), "ready_s": ready,
            "editing_s": editing, "lost_acks": lost, "unaffected_disturbed": disturbed,
            "acked": sum(len(p.acked) for p in players), "slow": slow}


def summary(values):
    return {"min": min(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values), "n": len(values)}


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--json", action="store_true", help="print only the summary, as JSON")
    ap.add_argument("--json-out", help="also write the summary, as JSON, to this file")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    base = state(d)["url"]
    tracks = [{"id": f"t{k}", "name": f"T{k}", "sampleId": "kick", "steps": []}
              for k in range(2 * a.kills)]
    sessions = []
    for _ in range(a.sessions):
        status, body = request(f"{base}/api/sessions", "POST", {"state": {"tracks": tracks}})
        assert status == 201, status
        sessions.append(body["id"])
    rounds = []
    for r in range(a.kills):
        res = await one_round(d, sessions, [f"t{2 * r}", f"t{2 * r + 1}"])
        rounds.append(res)
        if not a.json:
            print(f"kill -9 {res['victim']} ({res['sessions_on_victim']} of {a.sessions} "
                  f"sessions, {res['affected']} players): connected again p50 "
                  f"{percentile(res['ready_s'], 50) * 1000:.0f} ms (min "
                  f"{min(res['ready_s']) * 1000:.0f}), max "
                  f"{max(res['ready_s']) * 1000:.0f} ms; editing again p50 "
                  f"{percentile(res['editing_s'], 50) * 1000:.0f} ms, max "
                  f"{max(res['editing_s']) * 1000:.0f} ms; acknowledged toggles lost "
                  f"{res['lost_acks']}; other players disturbed {res['unaffected_disturbed']}",
                  flush=True)
            for x in res["slow"]:
                print(f"  slow: {x}", flush=True)
    out = {"kills": a.kills, "sessions": a.sessions,
           "ready_s": summary([v for r in rounds for v in r["ready_s"]]),
           "editing_s": summary([v for r in rounds for v in r["editing_s"]]),
           "lost_acks": sum(r["lost_acks"] for r in rounds),
           "unaffected_disturbed": sum(r["unaffected_disturbed"] for r in rounds),
           "victims": [r["victim"] for r in rounds],
           "slow": [x for r in rounds for x in r["slow"]]}
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(json.dumps(out) + "\n")
    if a.json:
        print(json.dumps(out))
    else:
        for k, what in (("ready_s", "connected again (snapshot)"),
                        ("editing_s", "editing again (first ack)")):
            s = out[k]
            print(f"all kills, {what}: min {s['min'] * 1000:.0f} ms, p50 "
                  f"{s['p50'] * 1000:.0f} ms, p99 "
                  f"{s['p99'] * 1000:.0f} ms, max {s['max'] * 1000:.0f} ms ({s['n']} players)")
    return 1 if out["lost_acks"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
