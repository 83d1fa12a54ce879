"""End-to-end test harness: starts the real grooved binary on 127.0.0.1 with
an ephemeral port and a temporary data directory, and talks HTTP and
WebSocket to it. Every wait is bounded; servers are always stopped."""
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import websockets

# GROOVED_BIN_OVERRIDE (e.g. the ThreadSanitizer build) wins over the
# GROOVED_BIN that ctest sets for each test.
BIN = (os.environ.get("GROOVED_BIN_OVERRIDE") or os.environ.get("GROOVED_BIN")
       or os.path.join(os.path.dirname(__file__), "../../build-test/grooved"))


# Cluster mode: with GROOVED_TEST_PG naming a running tests/e2e/pg_fixture.py
# directory, every Server gets a PostgreSQL database of its own as its
# durable store (--store postgres://...), and tests that look at the local
# store's files skip those checks (CLUSTER is true).
PG_FIXTURE = os.environ.get("GROOVED_TEST_PG")
CLUSTER = bool(PG_FIXTURE)


def pg_database():
    """A fresh database on the fixture's server; its --store URL."""
    with open(os.path.join(PG_FIXTURE, "pg.json")) as f:
        port = json.load(f)["port"]
    name = "g" + os.urandom(8).hex()
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "-c", f"CREATE DATABASE {name}"], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    return f"postgresql://postgres@127.0.0.1:{port}/{name}"


CLUSTER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "scripts",
                              "cluster")


def cluster_script(*args, timeout=240):
    """Runs scripts/cluster with BIN as the nodes' binary; its stdout, or
    AssertionError with everything it printed when it fails."""
    p = subprocess.run([CLUSTER_SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, GROOVED_BIN=os.path.abspath(BIN)))
    if p.returncode != 0:
        raise AssertionError(f"scripts/cluster {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    return p.stdout


class Server:
    def __init__(self, data_dir=None, args=(), env=None, preexec_fn=None):
        self.preexec_fn = preexec_fn
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="grooved-e2e-")
        self.args = list(args)
        self.store = None
        if CLUSTER and "--store" not in self.args:
            self.store = pg_database()
            self.args += ["--store", self.store]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.log_path = None

    def start(self, wrapper=()):
        fd, self.log_path = tempfile.mkstemp(prefix="grooved-log-", suffix=".txt")
        self.log = os.fdopen(fd, "w+")
        cmd = list(wrapper) + [BIN, "--host", "127.0.0.1", "--port", "0",
                               "--data-dir", self.data_dir] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env,
                                     preexec_fn=self.preexec_fn)
        deadline = time.time() + 20
        while time.time() < deadline:
            m = re.search(r"listening on http://(\[[^\]]+\]|[^:/\s]+):(\d+)", self.read_log())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("grooved exited early:\n" + self.read_log())
            time.sleep(0.02)
        raise RuntimeError("grooved did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pattern, timeout=10, count=1):
        """Waits until pattern has matched `count` times in the log."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = list(re.finditer(pattern, self.read_log()))
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.read_log()[-3000:]}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=30):
        """Graceful stop; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("grooved did not stop on SIGTERM")
        return self.proc.returncode

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- HTTP ----
    def http(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed

    def create(self, body=None):
        status, _, b = self.http("POST", "/api/sessions", body if body is not None else {})
        assert status == 201, (status, b)
        return b["id"]

    def ws_url(self, sid):
        return f"ws://127.0.0.1:{self.port}/api/sessions/{sid}/ws"


class Client:
    """A WebSocket player that keeps every message it receives."""

    def __init__(self, ws):
        self.ws = ws
        self.seq = 0
        self.snapshot = None
        self.player_id = None

    @classmethod
    async def join(cls, server, sid):
        ws = await websockets.connect(server.ws_url(sid), max_size=None, open_timeout=10)
        c = cls(ws)
        c.snapshot = await c.recv_type("snapshot")
        c.player_id = c.snapshot["playerId"]
        return c

    async def recv(self, timeout=10):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return raw if raw == "pong" else json.loads(raw)

    async def recv_type(self, type_, timeout=10):
        deadline = time.time() + timeout
        while True:
            m = await self.recv(max(0.01, deadline - time.time()))
            if isinstance(m, dict) and m.get("type") == type_:
                return m

    async def send(self, msg, with_seq=True):
        if with_seq and "seq" not in msg:
            self.seq += 1
            msg = dict(msg, seq=self.seq)
        await self.ws.send(json.dumps(msg))
        return msg.get("seq")

    async def request(self, msg, reply_type):
        """Sends msg and returns the broadcast that acknowledges it."""
        seq = await self.send(msg)
        while True:
            m = await self.recv()
            if not isinstance(m, dict):
                continue
            if m.get("type") == "error" and m.get("clientSeq") == seq:
                return m
            if m.get("type") == reply_type and m.get("clientSeq") == seq:
                return m

    async def expect_nothing(self, within=0.3):
        try:
            m = await asyncio.wait_for(self.ws.recv(), within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected message {m}")

    async def close(self):
        await self.ws.close()


TRACK = {"id": "t1", "name": "Kick", "sampleId": "kick", "steps": []}


def raw_exchange(port, data, timeout=5.0, source=None, host="127.0.0.1"):
    """Sends data in one write on a fresh connection and returns every byte
    the server sends until it closes (or timeout seconds pass)."""
    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    try:
        sock.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def metric(server, name):
    """The value of one Prometheus sample (name with labels, exactly)."""
    _, _, text = server.http("GET", "/metrics")
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class Skip(Exception):
    """Raised by a test whose precondition this machine lacks (said why)."""


def run(tests):
    """Runs each test (sync or async), prints a summary line, exits non-zero on failure."""
    passed = failed = skipped = 0
    for t in tests:
        name = t.__name__
        start = time.time()
        try:
            if asyncio.iscoroutinefunction(t):
                asyncio.run(asyncio.wait_for(t(), 240))
            else:
                t()
            passed += 1
            print(f"ok   {name} ({time.time() - start:.1f}s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""),
          flush=True)
    sys.exit(1 if failed else 0)
