"""scripts/cluster on loopback: `up --nodes 2` starts a PostgreSQL primary with
a synchronous standby, Redis and two grooved nodes and describes them in
cluster.json; a session edited on one node has its KV view in Redis (and is
listed by the other node, which reads the same view); `restart` replaces a
node gracefully; `down` leaves no process behind."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from harness import BIN, TRACK, Client, Server, run
from resp import Resp, view

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
CLUSTER = os.path.join(ROOT, "scripts", "cluster")
PSQL = "/usr/lib/postgresql/15/bin/psql"


def cluster(*args, timeout=180):
    p = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, GROOVED_BIN=os.path.abspath(BIN)))
    return p.returncode, p.stdout + p.stderr


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_under(d):
    """Pids of every process whose command line names the cluster's directory, or
    whose title names one of its postgres servers ("postgres: grooved_<dir>_...")."""
    tag = "grooved_" + "".join(ch if ch.isalnum() or ch == "_" else "_"
                                for ch in os.path.basename(d).lower()) + "_"
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if d.encode() in cmdline or cmdline.startswith(f"postgres: {tag}".encode()):
            out.append(int(pid))
    return out


def node_stub(node):
    """A harness Server pointed at a running node (for its HTTP helpers)."""
    s = Server(data_dir=node["data_dir"])
    s.port = node["port"]
    return s


async def test_cluster_up_edit_restart_down():
    d = tempfile.mkdtemp(prefix="grooved-cluster-")
    pids = []
    try:
        rc, out = cluster("up", d, "--nodes", "2")
        assert rc == 0, out
        with open(os.path.join(d, "cluster.json")) as f:
            c = json.load(f)
        nodes, pg, redis = c["nodes"], c["postgres"], c["redis"]
        assert len(nodes) == 2
        for n in nodes:
            assert {"id", "pid", "port", "url", "log"} <= set(n), n
            assert n["url"] == f"http://127.0.0.1:{n['port']}" and os.path.exists(n["log"])
        for role in ("primary", "standby"):
            assert {"pid", "port", "datadir"} <= set(pg[role]), pg
        assert {"pid", "port"} <= set(redis)
        pids = [n["pid"] for n in nodes] + [pg["primary"]["pid"], pg["standby"]["pid"],
                                             redis["pid"]]
        assert all(alive(p) for p in pids), pids

        # The standby is synchronous, and the database and role for grooved exist.
        q = subprocess.run([PSQL, "-X", "-A", "-t", "-h", "127.0.0.1", "-p",
                            str(pg["primary"]["port"]), "-U", "postgres", "-c",
                            "SELECT sync_state, state FROM pg_stat_replication"],
                           capture_output=True, text=True, timeout=30)
        assert q.stdout.split() == ["sync|streaming"], q.stdout + q.stderr
        assert len(processes_under(d)) > 7, "postgres processes are titled with the cluster"
        q = subprocess.run([PSQL, "-X", "-A", "-t", "-h", "127.0.0.1", "-p",
                            str(pg["standby"]["port"]), "-U", "grooved", "-d", "grooved", "-c",
                            "SELECT pg_is_in_recovery()"],
                           capture_output=True, text=True, timeout=30)
        assert q.stdout.strip() == "t", q.stdout + q.stderr

        # A session created and edited on node1: its view lands in Redis.
        n1, n2 = node_stub(nodes[0]), node_stub(nodes[1])
        sid = n1.create({"name": "clustered", "state": {"tracks": [TRACK]}})
        a = await Client.join(n1, sid)
        for st in (0, 4, 8):
            ack = await a.request({"type": "toggle_step", "trackId": "t1", "step": st},
                                  "step_toggled")
            assert ack["type"] == "step_toggled"
        await a.close()
        r = Resp(redis["port"])
        deadline = time.time() + 15
        while view(r, sid)[0] is None and time.time() < deadline:
            await asyncio.sleep(0.1)
        value, opno = view(r, sid)
        assert value is not None, "no KV view in Redis"
        _, _, state = n1.http("GET", f"/api/sessions/{sid}")
        assert json.loads(value)["state"] == state["state"] and opno >= 3
        r.close()
        # node2 lists it: the listing reads the shared view.
        st, _, page = n2.http("GET", "/api/sessions?limit=10")
        assert st == 200 and [x["id"] for x in page["sessions"]] == [sid], page

        rc, out = cluster("status", d)
        assert rc == 0 and f"{pg['standby']['name']}=sync" in out, out
        # primary, standby, redis, two nodes and HAProxy, which sees both nodes up
        assert out.count("running") == 6 and out.count("haproxy: UP/L7OK") == 2, out
        # The balancer's URL serves the session too.
        with open(os.path.join(d, "cluster.json")) as f:
            url = json.load(f)["url"]
        with urllib.request.urlopen(f"{url}/api/sessions/{sid}", timeout=10) as resp:
            assert json.loads(resp.read())["state"] == state["state"]

        rc, out = cluster("restart", d, "node1")
        assert rc == 0, out
        with open(os.path.join(d, "cluster.json")) as f:
            c2 = json.load(f)
        old, new = nodes[0], c2["nodes"][0]
        assert new["pid"] != old["pid"] and new["port"] == old["port"] and not alive(old["pid"])
        pids.append(new["pid"])
        _, _, again = n1.http("GET", f"/api/sessions/{sid}")
        assert again["state"] == state["state"]

        rc, out = cluster("down", d)
        assert rc == 0, out
        left = [p for p in pids if alive(p)] + processes_under(d)
        assert not left, f"still running after down: {left}"
        rc, out = cluster("status", d)
        assert rc != 0 and "running" not in out, out
    finally:
        if any(alive(p) for p in pids) or processes_under(d):
            cluster("down", d)
        for p in set(pids + processes_under(d)):  # whatever down could not stop
            if alive(p):
                os.kill(p, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def test_down_after_an_interrupted_up():
    """`up` killed (with its process group) once the primary runs: `down` stops what
    cluster.json recorded, and nothing of the cluster is left."""
    d = tempfile.mkdtemp(prefix="grooved-cluster-")
    up = subprocess.Popen([CLUSTER, "up", d, "--nodes", "1"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True,
                          env=dict(os.environ, GROOVED_BIN=os.path.abspath(BIN)))
    try:
        path, primary = os.path.join(d, "cluster.json"), None
        deadline = time.time() + 120
        while not primary and time.time() < deadline and up.poll() is None:
            try:
                with open(path) as f:
                    primary = (json.load(f).get("postgres") or {}).get("primary", {}).get("pid")
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert primary and alive(primary), "the primary never started"
        os.killpg(up.pid, signal.SIGKILL)
        up.wait(10)
        assert alive(primary)
        rc, out = cluster("down", d)
        assert rc == 0, out
        deadline = time.time() + 10  # children of the killed up (runuser, psql) end by themselves
        while processes_under(d) and time.time() < deadline:
            time.sleep(0.1)
        assert not alive(primary) and not processes_under(d), (processes_under(d), out)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
        cluster("down", d)
        for p in processes_under(d):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run([test_cluster_up_edit_restart_down, test_down_after_an_interrupted_up])
