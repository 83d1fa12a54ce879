"""The adversarial suite (issue 10): every attack that was tried against
grooved, old and new, run against one server in turn, bounded in time.

While each attack runs, a canary player on another session toggles steps
and checks each acknowledgement. After each attack the suite asserts:

  - the server is up: /healthz answers;
  - the canary's acks kept within LATENCY_BOUND_S (generous on purpose: a
    shared 2-core machine, under AddressSanitizer), and it never failed;
  - the server's RSS stayed within RSS_OVERHEAD of its starting RSS plus
    twice --memory-budget-mb (ASan roughly doubles small allocations);
  - nothing acknowledged is lost: at the end the server is killed with
    SIGKILL, restarted, and the canary's session holds every acknowledged
    toggle.
"""
import base64
import json
import os
import re
import socket
import threading
import time

from harness import TRACK, Server, cpu_seconds, raw_exchange, rss_bytes, run
from wsraw import RawWS, frame, upgrade_request

LATENCY_BOUND_S = 2.0
BUDGET_MB = 8
RSS_OVERHEAD = 48 * 2**20


class Canary(threading.Thread):
    """A player on its own session that toggles steps one at a time."""

    def __init__(self, server, sid):
        super().__init__(daemon=True)
        self.server, self.sid = server, sid
        self.stop_flag = threading.Event()
        self.lat = []
        self.state = {}  # step -> value the server acknowledged
        self.error = None
        self.peak_rss = 0

    def run(self):
        try:
            ws = RawWS.connect(self.server.port, self.sid, timeout=LATENCY_BOUND_S * 5)
            ws.read_json("snapshot")
            seq = 0
            while not self.stop_flag.is_set():
                seq += 1
                step = seq % 16
                t0 = time.time()
                ws.send({"type": "toggle_step", "trackId": "t1", "step": step, "seq": seq})
                while True:
                    m = ws.read_json(timeout=LATENCY_BOUND_S * 5)
                    if m.get("clientSeq") == seq:
                        break
                assert m["type"] == "step_toggled", m
                self.lat.append(time.time() - t0)
                self.state[step] = m["value"]
                self.peak_rss = max(self.peak_rss, rss_bytes(self.server.proc.pid))
                time.sleep(0.02)
            ws.close()
        except Exception as e:  # reported by check()
            self.error = e

    def window(self):
        n = len(self.lat)
        return lambda: self.lat[n:]


class Suite:
    def __init__(self):
        # AddressSanitizer keeps freed memory in a quarantine (256 MiB by
        # default) that would hide what grooved itself holds: keep it small.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"}
        self.s = Server(args=["--memory-budget-mb", str(BUDGET_MB), "--create-rate", "100000",
                              "--evict-after", "3600"], env=env).start()

        self.canary_sid = self.s.create({"state": {"tracks": [TRACK]}})
        self.target = self.s.create({"state": {"tracks": [TRACK]}})
        self.base_rss = rss_bytes(self.s.proc.pid)
        self.canary = Canary(self.s, self.canary_sid)
        self.canary.start()
        time.sleep(0.5)
        self.results = []

    def attack(self, name, fn):
        since = self.canary.window()
        t0 = time.time()
        fn(self)
        took = time.time() - t0
        time.sleep(0.3)
        lat = since()
        assert self.canary.error is None, f"{name}: the canary failed: {self.canary.error!r}"
        assert lat, f"{name}: the canary got no ack while it ran"
        st, _, b = self.s.http("GET", "/healthz")
        assert st == 200 and b["status"] == "ok", f"{name}: /healthz {st}"
        worst = max(lat)
        assert worst <= LATENCY_BOUND_S, f"{name}: canary ack took {worst:.3f} s"
        rss = max(self.canary.peak_rss, rss_bytes(self.s.proc.pid))
        limit = self.base_rss + 2 * BUDGET_MB * 2**20 + RSS_OVERHEAD
        assert rss <= limit, f"{name}: RSS {rss >> 20} MiB over {limit >> 20} MiB"
        lat.sort()
        print(f"  {name:28s} {took:5.1f} s  canary acks {len(lat):4d}  "
              f"p50 {lat[len(lat) // 2] * 1000:6.1f} ms  max {worst * 1000:6.1f} ms  "
              f"RSS {rss >> 20} MiB", flush=True)

    def finish(self):
        self.canary.stop_flag.set()
        self.canary.join(15)
        assert self.canary.error is None, repr(self.canary.error)
        acked = dict(self.canary.state)
        self.s.kill9()
        self.s.start()
        _, _, body = self.s.http("GET", f"/api/sessions/{self.canary_sid}")
        steps = body["state"]["tracks"][0]["steps"]
        lost = {k: v for k, v in acked.items() if steps[k] != v}
        assert not lost, f"acknowledged toggles lost after kill -9: {lost}"
        print(f"  {len(self.canary.lat)} canary toggles acknowledged, none lost after kill -9")


# ---- the attacks --------------------------------------------------------


def one_packet(t):
    post = (b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}")
    for data in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post, post * 2,
                 post.replace(b"Length: 2", b"Length: abc") + post):
        raw_exchange(t.s.port, data, timeout=3)
    before = cpu_seconds(t.s.proc.pid)
    time.sleep(0.5)
    assert cpu_seconds(t.s.proc.pid) - before < 0.3, "spinning after pipelined requests"


def slowloris(t):
    socks = []
    for _ in range(150):
        k = socket.create_connection(("127.0.0.1", t.s.port), timeout=5)
        k.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(k)
    for i in range(6):  # a byte every half second: the head never ends
        for k in socks:
            try:
                k.sendall(b"X")
            except OSError:
                pass
        time.sleep(0.5)
    before = cpu_seconds(t.s.proc.pid)
    time.sleep(0.5)
    assert cpu_seconds(t.s.proc.pid) - before < 0.3, "spinning on slow heads"
    for k in socks:
        k.close()


def header_and_body_limits(t):
    big_head = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    assert raw_exchange(t.s.port, big_head).startswith(b"HTTP/1.1 431")
    many = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 150 + b"\r\n"
    assert raw_exchange(t.s.port, many).startswith(b"HTTP/1.1 431")
    st, _, _ = t.s.http("POST", "/api/sessions", raw=b"x" * 70000,
                        headers={"Content-Type": "application/json"})
    assert st == 413
    long_uri = b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n"
    assert raw_exchange(t.s.port, long_uri).startswith(b"HTTP/1.1 431")


def traversal(t):
    for path in ("/../README.md", "/%2e%2e/README.md", "/..%2fREADME.md", "/web/../README.md",
                 "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/app.js%00.html", "/s/../../README.md"):
        reply = raw_exchange(t.s.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert re.match(rb"HTTP/1\.1 (404|400)", reply), (path, reply[:100])
        assert b"grooved" not in reply.split(b"\r\n\r\n", 1)[-1], path


def malformed_json_and_frames(t):
    for junk in (b"\x00\xff" * 500 + b"\r\n\r\n", b"\x16\x03\x01\x02\x00" + os.urandom(300)):
        raw_exchange(t.s.port, junk, timeout=2)
    cases = [
        (frame("{"), None), (frame("[1,2"), None), (frame(b"\x00\x01", opcode=2), None),
        (frame(b"\xff\xfe"), 1007), (frame("x", mask=False), 1002),
        (bytes([0xC1, 0x81, 1, 2, 3, 4, 0x40]), 1002), (frame("ping", opcode=9, fin=False), 1002),
        (frame("x" * 70000), None), (frame("a", fin=False) + frame("b", opcode=1), 1002),
    ]
    for data, code in cases:
        ws = RawWS.connect(t.s.port, t.target)
        ws.read_json("snapshot")
        ws.sock.sendall(data)
        deadline = time.time() + 5
        got = None
        while time.time() < deadline:
            try:
                op, payload = ws.read_frame()
            except (EOFError, socket.timeout, ConnectionResetError):
                break
            if op == 8:
                got = int.from_bytes(payload[:2], "big")
                break
            if op == 1 and code is None and b'"error"' in payload:
                got = "error"
                break
        assert got == (code if code else "error"), (data[:20], got)
        ws.close()


def thousand_sockets_one_session(t):
    socks, refused, joined = [], 0, 0
    for i in range(1000):
        k = socket.create_connection(("127.0.0.1", t.s.port), timeout=10,
                                     source_address=(f"127.0.2.{2 + i % 4}", 0))
        k.sendall(upgrade_request(t.target))
        socks.append(k)
    for k in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = k.recv(4096)
            if not chunk:
                break
            head += chunk
        joined += head.startswith(b"HTTP/1.1 101")
        refused += head.startswith(b"HTTP/1.1 503")
    assert joined == 10 and refused == 990, (joined, refused)
    for k in socks:
        k.close()


def reconnect_storm(t):
    for _ in range(40):
        ws = [RawWS.connect(t.s.port, t.target) for _ in range(5)]
        for w in ws:
            w.close()
    w = RawWS.connect(t.s.port, t.target)
    w.read_json("snapshot")
    w.close()


def cursor_and_ping_floods(t):
    victim = RawWS.connect(t.s.port, t.target)
    victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder = RawWS.connect(t.s.port, t.target)
    flooder.read_json("snapshot")
    burst = b"".join(frame(json.dumps({"type": "cursor_move", "position": "p" * 60000}))
                     for _ in range(50))
    burst += b"".join(frame(json.dumps({"type": "cursor_move", "position": {"x": i, "y": i}}))
                      for i in range(400))
    burst += frame("ping") * 20000
    flooder.sock.settimeout(5)
    try:
        flooder.sock.sendall(burst)
    except socket.timeout:
        pass
    time.sleep(1)
    assert "closing slow reader" not in t.s.read_log()
    flooder.close()
    victim.close()


def create_flood(t):
    heavy = {"state": {"tracks": [dict(TRACK, id=f"t{k}", steps=[True] * 128, stepCount=128,
                                       parameterLocks=[{"pitch": p % 48 - 24} for p in range(128)])
                                  for k in range(16)]}}
    body = json.dumps(heavy).encode()
    req = (b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    created = [0]

    def worker(k):
        for _ in range(60):
            if raw_exchange(t.s.port, req, source=f"127.0.3.{k + 2}").startswith(b"HTTP/1.1 201"):
                created[0] += 1

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert created[0] == 240, created[0]


def listing_and_connection_floods(t):
    # --list-rate 60 a minute: at most 60 plus one a second of refill.
    codes, t0 = [], time.time()
    while 429 not in codes and len(codes) < 300:
        codes.append(t.s.http("GET", "/api/sessions?limit=1")[0])
    assert 429 in codes and codes[0] == 200, codes
    assert codes.count(200) <= 61 + (time.time() - t0), codes.count(200)

    held = []
    for _ in range(400):
        try:
            held.append(socket.create_connection(("127.0.0.1", t.s.port), timeout=5,
                                                 source_address=("127.0.4.2", 0)))
        except OSError:
            break
    time.sleep(0.5)
    reply = raw_exchange(t.s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                         source="127.0.4.2")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
    for k in held:
        k.close()


def test_adversarial_suite():
    t = Suite()
    try:
        t.attack("one-packet pipelining", one_packet)
        t.attack("slowloris", slowloris)
        t.attack("header and body limits", header_and_body_limits)
        t.attack("path traversal", traversal)
        t.attack("malformed JSON and frames", malformed_json_and_frames)
        t.attack("1,000 sockets, one session", thousand_sockets_one_session)
        t.attack("reconnect storm", reconnect_storm)
        t.attack("cursor and ping floods", cursor_and_ping_floods)
        t.attack("create flood (memory)", create_flood)
        t.attack("listing and connection floods", listing_and_connection_floods)
        t.finish()
    finally:
        t.s.cleanup()


if __name__ == "__main__":
    run([test_adversarial_suite])
